"""Shards: deterministic files, a clean train/val partition of the token stream, loading checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fromzero.data.corpus import resolve_input
from fromzero.data.shards import ShardInfo, load_shards, prepare_corpus
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from fromzero.errors import DataError

FILES = ("tokenizer.json", "train-00000.bin", "val-00000.bin", "report.json", "manifest.json")
CHAR = TokenizerConfig(kind="char")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a slice of the novel (.txt) and three short JSONL documents."""
    root = tmp_path_factory.mktemp("corpus")
    novel = resolve_input("bundled:pride_and_prejudice").read_text(encoding="utf-8")
    (root / "novel.txt").write_text(novel[:30_000], encoding="utf-8")
    rows = [{"text": "Mr. Bennet laughed."}, {"text": "   "}, {"text": "床前明月光。"}, {"text": "The end."}]
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def _prepare(corpus: Path, out: Path, **kwargs: object) -> ShardInfo:
    kwargs.setdefault("chunk_tokens", 512)
    return prepare_corpus([corpus], out, CHAR, progress=False, **kwargs)


def _documents(corpus: Path, tok: Tokenizer) -> list[list[int]]:
    """Each non-empty document's ids plus end-of-text, in sorted file order (independent of the pipeline)."""
    rows = [json.loads(line)["text"] for line in (corpus / "rows.jsonl").read_text().splitlines()]
    texts = [(corpus / "novel.txt").read_text(encoding="utf-8")] + [t for t in rows if t.strip()]
    return [[*tok.encode(text), tok.eos_id] for text in texts]


def test_every_document_is_split_between_train_and_val(corpus: Path, tmp_path: Path) -> None:
    info = _prepare(corpus, tmp_path)
    train, val, meta = load_shards(tmp_path)
    docs = _documents(corpus, Tokenizer.load(info.tokenizer_path))
    assert meta["train_tokens"] + meta["val_tokens"] == sum(map(len, docs)) == len(train) + len(val)
    assert (meta["dtype"], meta["tokenizer_kind"], meta["format_version"]) == ("uint16", "char", 2)
    assert train.dtype == np.uint16 and meta["documents"] == 4
    # The novel (59 chunks of 512) gives every 10th chunk to val (5 or 6, by its offset);
    # the short rows go whole to one split.
    novel, rows = docs[0], docs[1:]
    chunks = [novel[i : i + 512] for i in range(0, len(novel), 512)]
    val_list, train_list = val[0 : len(val)].tolist(), train[0 : len(train)].tolist()
    held = [c for c in chunks if _contains(val_list, c)]
    assert len(held) in (5, 6) and all(_contains(train_list, c) for c in chunks if c not in held)
    assert all(_contains(train_list, r) != _contains(val_list, r) for r in rows)


def _contains(stream: list[int], part: list[int]) -> bool:
    n = len(part)
    return any(stream[i : i + n] == part for i in range(len(stream) - n + 1))


def test_deterministic_bytes_and_seed(corpus: Path, tmp_path: Path) -> None:
    _prepare(corpus, tmp_path / "a")
    b = _prepare(corpus, tmp_path / "b")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    c = _prepare(corpus, tmp_path / "c", seed=7)
    assert (tmp_path / "c" / "val-00000.bin").read_bytes() != (tmp_path / "a" / "val-00000.bin").read_bytes()
    assert c.meta["val_tokens"] + c.meta["train_tokens"] == b.meta["val_tokens"] + b.meta["train_tokens"]
    assert not list((tmp_path / "a").glob(".*"))  # no temp files or resume state left behind


def test_bpe_shards_and_given_tokenizer(corpus: Path, tmp_path: Path) -> None:
    bpe = TokenizerConfig(kind="bpe", vocab_size=400)
    info = prepare_corpus([corpus], tmp_path / "bpe", bpe, progress=False)
    assert info.meta["tokenizer_kind"] == "bpe" and info.meta["vocab_size"] == 400
    tok = train_tokenizer(["tiny corpus for a given tokenizer"], CHAR)
    given = prepare_corpus([corpus], tmp_path / "given", tokenizer=tok, progress=False)
    assert given.meta["vocab_size"] == tok.vocab_size
    train, val, _ = load_shards(tmp_path / "given")
    assert tok.unk_id in np.concatenate([train[0 : len(train)], val[0 : len(val)]])


def test_tiny_corpus_still_gets_a_validation_split(tmp_path: Path) -> None:
    (tmp_path / "tiny.txt").write_text("abcdefghij" * 5, encoding="utf-8")  # 50 tokens + end-of-text
    info = prepare_corpus([tmp_path / "tiny.txt"], tmp_path / "out", CHAR, progress=False)
    assert info.meta["val_tokens"] >= 1 and info.meta["train_tokens"] + info.meta["val_tokens"] == 51


def test_val_fraction_zero(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("hello world", encoding="utf-8")
    info = prepare_corpus([tmp_path / "t.txt"], tmp_path / "out", CHAR, val_fraction=0, progress=False)
    train, val, meta = load_shards(info.out_dir)
    assert (len(train), len(val), meta["shards"]["val"]) == (12, 0, [])
    (tmp_path / "one.txt").write_text("x", encoding="utf-8")
    no_eos = train_tokenizer(["x"], TokenizerConfig(kind="char", special_tokens=["<unk>"]))
    with pytest.raises(DataError, match="only 1 token.*too few to split"):
        prepare_corpus([tmp_path / "one.txt"], tmp_path / "o2", tokenizer=no_eos, progress=False)
    assert not (tmp_path / "o2").exists()  # a failed fresh run leaves nothing behind


def _single_file_folder(folder: Path, corpus: Path) -> None:
    """The format-1 layout older versions wrote: train.bin, val.bin, meta.json (built here by hand)."""
    folder.mkdir()
    tok = train_tokenizer([(corpus / "novel.txt").read_text(encoding="utf-8")], CHAR)
    tok.save(folder / "tokenizer.json")
    ids = np.array(tok.encode((corpus / "novel.txt").read_text(encoding="utf-8")), dtype="<u2")
    ids[:27_000].tofile(folder / "train.bin")
    ids[27_000:].tofile(folder / "val.bin")
    meta = {"dtype": "uint16", "vocab_size": tok.vocab_size, "train_tokens": 27_000,
            "val_tokens": len(ids) - 27_000, "format_version": 1, "tokenizer_kind": "char"}
    (folder / "meta.json").write_text(json.dumps(meta))


def test_single_file_folders_still_load(corpus: Path, tmp_path: Path) -> None:
    _single_file_folder(tmp_path / "old", corpus)
    train, val, meta = load_shards(tmp_path / "old")
    assert (train.size, meta["format_version"]) == (27_000, 1) and not train.flags.writeable
    assert val.size == meta["val_tokens"] > 0


def test_load_errors(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory; run `fromzero prepare`"):
        load_shards(tmp_path / "nowhere")
    _single_file_folder(tmp_path / "old", corpus)
    tmp_path = tmp_path / "old"
    train_bin, meta_path = tmp_path / "train.bin", tmp_path / "meta.json"
    original = meta_path.read_text()

    meta = json.loads(original)
    meta["vocab_size"] += 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="vocab_size .* does not match"):
        load_shards(tmp_path)

    meta_path.write_text(original)
    train_bin.write_bytes(train_bin.read_bytes() + b"\x00")
    with pytest.raises(DataError, match=r"train\.bin: size \d+ bytes is not a multiple of 2"):
        load_shards(tmp_path)

    train_bin.unlink()
    with pytest.raises(DataError, match=r"train\.bin: missing; run `fromzero prepare`"):
        load_shards(tmp_path)

    meta_path.write_text("{truncated")
    with pytest.raises(DataError, match=r"meta\.json: corrupt"):
        load_shards(tmp_path)
