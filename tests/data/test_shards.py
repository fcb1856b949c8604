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

FILES = ("tokenizer.json", "train.bin", "val.bin", "meta.json")
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


def _reference_stream(corpus: Path, tok: Tokenizer) -> list[int]:
    """Documents in sorted file order, joined by the end-of-text id (independent of shards.py)."""
    rows = [json.loads(line)["text"] for line in (corpus / "rows.jsonl").read_text().splitlines()]
    texts = [(corpus / "novel.txt").read_text(encoding="utf-8")] + [t for t in rows if t.strip()]
    stream: list[int] = []
    for i, text in enumerate(texts):
        stream += ([tok.eos_id] if i else []) + tok.encode(text)
    return stream


def test_partition_of_the_stream(corpus: Path, tmp_path: Path) -> None:
    info = _prepare(corpus, tmp_path)
    train, val, meta = load_shards(tmp_path)
    tok = Tokenizer.load(info.tokenizer_path)
    stream = _reference_stream(corpus, tok)
    assert meta == info.meta
    assert meta["train_tokens"] + meta["val_tokens"] == len(stream) == train.size + val.size
    assert stream.count(tok.eos_id) == 3  # four non-empty documents
    assert (meta["dtype"], meta["tokenizer_kind"], meta["format_version"]) == ("uint16", "char", 1)
    assert train.dtype == np.uint16 and not train.flags.writeable
    # Rebuild the stream chunk by chunk: every chunk comes from exactly one split, in order.
    size, val_chunks = meta["chunk_tokens"], set(meta["val_chunks"])
    n_chunks = -(-len(stream) // size)
    assert len(val_chunks) == round(0.1 * n_chunks)
    rebuilt, pos = [], {"train": 0, "val": 0}
    for i in range(n_chunks):
        name, split = ("val", val) if i in val_chunks else ("train", train)
        length = min(size, len(stream) - i * size)
        rebuilt += split[pos[name] : pos[name] + length].tolist()
        pos[name] += length
    assert rebuilt == stream
    assert pos == {"train": train.size, "val": val.size}


def test_deterministic_bytes_and_seed(corpus: Path, tmp_path: Path) -> None:
    a = _prepare(corpus, tmp_path / "a")
    b = _prepare(corpus, tmp_path / "b")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    c = _prepare(corpus, tmp_path / "c", seed=7)
    assert c.meta["val_chunks"] != a.meta["val_chunks"]
    assert c.meta["val_tokens"] + c.meta["train_tokens"] == b.meta["val_tokens"] + b.meta["train_tokens"]
    assert not list((tmp_path / "a").glob(".*"))  # no temp files left behind


def test_bpe_shards_and_given_tokenizer(corpus: Path, tmp_path: Path) -> None:
    bpe = TokenizerConfig(kind="bpe", vocab_size=400)
    info = prepare_corpus([corpus], tmp_path / "bpe", bpe, progress=False)
    assert info.meta["tokenizer_kind"] == "bpe" and info.meta["vocab_size"] == 400
    tok = train_tokenizer(["tiny corpus for a given tokenizer"], CHAR)
    given = prepare_corpus([corpus], tmp_path / "given", tokenizer=tok, progress=False)
    assert given.meta["vocab_size"] == tok.vocab_size
    train, val, _ = load_shards(tmp_path / "given")
    assert tok.unk_id in np.concatenate([train, val])


def test_tiny_corpus_shrinks_chunks(tmp_path: Path) -> None:
    (tmp_path / "tiny.txt").write_text("abcdefghij" * 5, encoding="utf-8")  # 50 tokens
    info = prepare_corpus([tmp_path / "tiny.txt"], tmp_path / "out", CHAR, progress=False)
    assert info.meta["chunk_tokens"] == 5
    assert len(info.meta["val_chunks"]) == 1
    assert (info.meta["train_tokens"], info.meta["val_tokens"]) == (45, 5)


def test_val_fraction_zero(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("hello world", encoding="utf-8")
    info = prepare_corpus([tmp_path / "t.txt"], tmp_path / "out", CHAR, val_fraction=0, progress=False)
    train, val, meta = load_shards(info.out_dir)
    assert (train.size, val.size, meta["val_chunks"]) == (11, 0, [])
    (tmp_path / "one.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="only 1 token.*too few to split"):
        prepare_corpus([tmp_path / "one.txt"], tmp_path / "o2", CHAR, progress=False)


def test_load_errors(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory; run `fromzero prepare`"):
        load_shards(tmp_path / "nowhere")
    _prepare(corpus, tmp_path)
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
