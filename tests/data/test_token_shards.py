"""Token shards read as one stream: every batch builder gives over 3+ shards exactly what it gives over the
concatenated array, and every corrupt folder is a one-line DataError naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fromzero.data.loader import RandomWindows, sequential_windows
from fromzero.data.masked_lm_batches import MaskedLMBatches, MaskedLMConfig
from fromzero.data.nsp_pairs import documents_from_stream, nsp_pair
from fromzero.data.span_corruption_batches import SpanCorruptionBatches, SpanCorruptionConfig
from fromzero.data.token_shards import ShardedTokens, open_manifest, sha256_file, token_chunks, token_counts
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from fromzero.data.word_segmentation import chinese_word_starts, wordpiece_word_starts
from fromzero.errors import DataError
from sharded_data import write_sharded

EOS, CLS, SEP, PAD, MASK = 0, 1, 2, 3, 4
VOCAB = 60
RNG = np.random.default_rng(0)
# documents of 5..80 ids in [5, VOCAB) joined by EOS: 1,000+ tokens
STREAM = np.concatenate([np.append(RNG.integers(5, VOCAB, int(n)), EOS) for n in RNG.integers(5, 80, 40)])
STREAM = STREAM.astype(np.uint16)


def _split(tokens: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """tokens cut at the given sizes (0 = an empty shard), the rest as the last part."""
    bounds = np.cumsum([0, *sizes])
    return [tokens[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)] + [tokens[bounds[-1]:]]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(["the quick brown fox jumps over the lazy dog 0123456789"], TokenizerConfig())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, tokenizer: Tokenizer) -> Path:
    """STREAM as train shards of 97 tokens (97 divides no window length used here), val as 3 shards."""
    ids = STREAM % tokenizer.vocab_size
    return write_sharded(tmp_path_factory.mktemp("shards") / "prepared", ids, 97, tokenizer, val=ids[:250])


def test_indexing_is_the_concatenation() -> None:
    flat = np.arange(100, 141, dtype=np.uint16)
    tokens = ShardedTokens(_split(flat, [7, 0, 13, 1]))  # 7, empty, 13, 1, 20
    assert (len(tokens), tokens.shape, tokens.size, tokens.ndim, tokens.dtype) == (41, (41,), 41, 1, flat.dtype)
    assert [tokens[i] for i in range(-41, 41)] == [flat[i] for i in range(-41, 41)]
    for a in range(-3, 44):
        for b in range(-3, 44):
            assert np.array_equal(tokens[a:b], flat[a:b]), (a, b)
    assert np.array_equal(tokens[::3], flat[::3]) and np.array_equal(tokens[30:2:-4], flat[30:2:-4])
    index = np.random.default_rng(1).integers(-41, 41, size=(6, 9))
    assert np.array_equal(tokens[index], flat[index]) and tokens[index].dtype == flat.dtype
    assert np.array_equal(tokens[[3, 20, -1]], flat[[3, 20, -1]])
    assert np.shares_memory(tokens[8:20], tokens.parts[1])  # inside one shard: a view, not a copy
    with pytest.raises(IndexError):
        tokens[41]
    with pytest.raises(IndexError):
        tokens[np.array([0, -42])]
    with pytest.raises(TypeError, match="whole stream"):
        np.asarray(tokens)
    with pytest.raises(TypeError):
        tokens[flat > 120]
    empty = ShardedTokens([], np.uint16)
    assert len(empty) == 0 and empty[0:5].shape == (0,) and empty[np.array([], np.int64)].shape == (0,)


def test_chunks_and_counts_go_shard_by_shard() -> None:
    parts = _split(STREAM, [300, 0, 211, 5])
    tokens = ShardedTokens(parts)
    chunks = list(token_chunks(tokens, max_tokens=100))
    assert np.array_equal(np.concatenate([c for _, c in chunks]), STREAM)
    assert [o for o, _ in chunks] == list(np.cumsum([0] + [len(c) for _, c in chunks])[:-1])
    inside = {(int(o), int(o) + len(c)) for o, c in chunks}
    for k in range(len(tokens.parts)):  # no chunk straddles a shard boundary
        assert not any(a < tokens.offsets[k] < b for a, b in inside)
    assert np.array_equal(token_counts(tokens), np.bincount(STREAM))
    assert np.array_equal(token_counts(tokens, minlength=100), np.bincount(STREAM, minlength=100))


def test_manifest_folder_opens_as_the_original_arrays(folder: Path, tokenizer: Tokenizer) -> None:
    train, val, meta = open_manifest(folder)
    ids = STREAM % tokenizer.vocab_size
    assert len(train.parts) == -(-len(ids) // 97) > 3 and all(isinstance(p, np.memmap) for p in train.parts)
    assert np.array_equal(train[:], ids) and np.array_equal(val[:], ids[:250]) and len(val.parts) == 3
    assert {k: meta[k] for k in ("dtype", "vocab_size", "train_tokens", "val_tokens", "format_version")} == {
        "dtype": "uint16", "vocab_size": tokenizer.vocab_size, "train_tokens": len(ids), "val_tokens": 250,
        "format_version": 2}
    assert meta["tokenizer_kind"] == "char"
    assert meta["shards"]["train"][0]["sha256"] == sha256_file(folder / "train-00000.bin")
    _, empty_val, _ = open_manifest(write_sharded(folder.parent / "no-val", ids, 300, tokenizer), verify="size")
    assert len(empty_val) == 0 and (folder.parent / "no-val" / "val-00000.bin").stat().st_size == 0


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_random_and_sequential_windows_match_the_concatenation(folder: Path) -> None:
    train, _, _ = open_manifest(folder)
    flat = train[:]
    crossing = 0
    for seq_len in (16, 40):
        sharded, whole = (RandomWindows(t, seq_len, 8, seed=5) for t in (train, flat))
        for step in range(150):
            for micro in (0, 1):
                _same(sharded.batch(step, micro), whole.batch(step, micro))
            _same(sharded.batch_rows(step, 1, 2, 5), whole.batch_rows(step, 1, 2, 5))
            starts = sharded.offsets(step).numpy()
            crossing += int(((starts // 97) != ((starts + seq_len) // 97)).sum())
        for stride in (seq_len, 7):
            for x, y in zip(sequential_windows(train, seq_len, 5, stride), sequential_windows(flat, seq_len, 5, stride),
                            strict=True):
                _same(x, y)
    assert crossing > 300  # many windows span a shard boundary


def _vocab() -> list[str]:
    """A WordPiece-like vocabulary: every third ordinary id continues a word."""
    return ["<eos>", "[CLS]", "[SEP]", "[PAD]", "[MASK]"] + [("##" if i % 3 == 0 else "") + f"w{i}"
                                                            for i in range(5, VOCAB)]


@pytest.mark.parametrize("nsp, whole_word", [(True, False), (True, True), (False, True)])
def test_masked_lm_batches_match_the_concatenation(nsp: bool, whole_word: bool) -> None:
    sharded = ShardedTokens(_split(STREAM, [97, 0, 250, 31, 400]))
    assert np.array_equal(documents_from_stream(sharded, EOS), documents_from_stream(STREAM, EOS))
    cfg = MaskedLMConfig(nsp=nsp, whole_word=whole_word)

    def batches(tokens):
        words = wordpiece_word_starts(tokens, _vocab()) if whole_word else None
        return MaskedLMBatches(tokens, documents_from_stream(tokens, EOS), seq_len=32, batch_size=6, seed=2,
                               cfg=cfg, cls_id=CLS, sep_id=SEP, pad_id=PAD, mask_id=MASK, vocab_size=VOCAB,
                               eos_id=EOS, word_starts=words)

    a, b = batches(sharded), batches(STREAM)
    for step in range(25):
        _same(a.batch(step), b.batch(step))
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    for _ in range(200):
        pa, pb = (nsp_pair(t, documents_from_stream(STREAM, EOS), 20, r, eos_id=EOS)
                  for t, r in ((sharded, rng_a), (STREAM, rng_b)))
        assert np.array_equal(pa[0], pb[0]) and np.array_equal(pa[1], pb[1]) and pa[2] == pb[2]


def test_span_corruption_batches_match_the_concatenation() -> None:
    sharded = ShardedTokens(_split(STREAM, [97, 97, 0, 400]))
    cfg = SpanCorruptionConfig(n_sentinels=20)
    a, b = (SpanCorruptionBatches(t, input_length=24, batch_size=5, seed=3, cfg=cfg, sentinel_ids=range(40, 60),
                                  eos_id=EOS, pad_id=PAD) for t in (sharded, STREAM))
    for step in range(40):
        _same(a.batch(step), b.batch(step))


def test_chinese_word_starts_match_the_concatenation() -> None:
    pytest.importorskip("jieba")
    vocab = ["[SEP]", "我", "爱", "北", "京", "天", "安", "门", "在", "这"]
    stream = np.random.default_rng(0).integers(0, len(vocab), 300)
    sharded = ShardedTokens(_split(stream, [50, 0, 101]))
    assert np.array_equal(chinese_word_starts(sharded, vocab, [0]), chinese_word_starts(stream, vocab, [0]))


# -- corrupt folders -------------------------------------------------------------------------------
def _edit_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))


def _other_tokenizer(folder: Path) -> None:
    train_tokenizer(["entirely different text!"], TokenizerConfig()).save(folder / "tokenizer.json")


def _interrupted(folder: Path) -> None:
    (folder / "manifest.json").unlink()
    (folder / ".prepare-state.json").write_text("{}")


CORRUPTIONS = {  # name: (damage, file named in the message, what it says)
    "truncated shard": (lambda f: os.truncate(f / "train-00001.bin", 100), "train-00001.bin", "194 bytes"),
    "sha256 mismatch": (lambda f: _flip_byte(f / "train-00002.bin"), "train-00002.bin", "sha256 differs"),
    "other tokenizer": (_other_tokenizer, "tokenizer.json", "not the tokenizer the shards were encoded with"),
    "missing shard": (lambda f: (f / "val-00001.bin").unlink(), "val-00001.bin", "missing"),
    "missing tokenizer": (lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json", "missing"),
    "path escaping": (lambda f: _edit_manifest(f, lambda m: m["shards"]["train"][3].update(file="../x.bin")),
                      "manifest.json", "'../x.bin' is not a relative path inside the folder"),
    "absolute path": (lambda f: _edit_manifest(f, lambda m: m["shards"]["val"][0].update(file=str(f / "v.bin"))),
                      "manifest.json", "is not a relative path inside the folder"),
    "missing key": (lambda f: _edit_manifest(f, lambda m: m.pop("tokenizer_sha256")), "manifest.json",
                    "missing tokenizer_sha256"),
    "missing shard key": (lambda f: _edit_manifest(f, lambda m: m["shards"]["train"][4].pop("sha256")),
                          "manifest.json", "missing shards.train[4].sha256"),
    "token sum": (lambda f: _edit_manifest(f, lambda m: m.update(val_tokens=251)), "manifest.json",
                  "the val shards hold 250 tokens but val_tokens is 251"),
    "dtype too small": (lambda f: _edit_manifest(f, lambda m: m.update(vocab_size=70_000)), "manifest.json",
                        "dtype 'uint16' cannot hold"),
    "vocab mismatch": (lambda f: _edit_manifest(f, lambda m: m.update(vocab_size=m["vocab_size"] + 1)),
                       "tokenizer.json", "but manifest.json says vocab_size"),
    "other version": (lambda f: _edit_manifest(f, lambda m: m.update(format_version=3)), "manifest.json",
                      "format_version 3 is not supported"),
    "not json": (lambda f: (f / "manifest.json").write_text("{not json"), "manifest.json", "unreadable"),
    "interrupted": (_interrupted, "prepared", "incomplete (prepare was interrupted); run the same `fromzero "
                                              "prepare` command again to continue"),
    "no manifest": (lambda f: (f / "manifest.json").unlink(), "manifest.json", "missing; run `fromzero prepare`"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupt_folder_is_a_one_line_error_naming_the_file(name: str, tmp_path: Path, tokenizer: Tokenizer
                                                            ) -> None:
    damage, culprit, says = CORRUPTIONS[name]
    folder = write_sharded(tmp_path / "prepared", STREAM % tokenizer.vocab_size, 97, tokenizer,
                           val=STREAM[:250] % tokenizer.vocab_size)
    open_manifest(folder)  # intact before the damage
    damage(folder)
    with pytest.raises(DataError) as err:
        open_manifest(folder)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(folder / culprit) if culprit != "prepared" else str(folder))
    assert says in message and "fromzero prepare" in message


def test_size_check_alone_skips_the_hash(tmp_path: Path, tokenizer: Tokenizer) -> None:
    copy = write_sharded(tmp_path / "copy", STREAM % tokenizer.vocab_size, 97, tokenizer)
    _flip_byte(copy / "train-00002.bin")
    train, _, _ = open_manifest(copy, verify="size")  # same size: only sha256 would notice
    flipped = 97 * 2 + 2  # byte 5 of shard 2 is the high byte of its token 2 (little-endian uint16)
    assert int(train[flipped]) == int(STREAM[flipped] % tokenizer.vocab_size) ^ 256
