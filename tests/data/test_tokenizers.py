"""Tokenizers: round trips (English and Chinese) for every kind, save/load, special tokens, dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tokenizers as hf_tokenizers

from fromzero.config import from_dict
from fromzero.data.corpus import resolve_input
from fromzero.data.tokenizers import (
    KINDS,
    WORDPIECE_SPECIAL_TOKENS,
    Tokenizer,
    TokenizerConfig,
    dtype_for_vocab,
    fast_encode_batch,
    train_tokenizer,
)
from fromzero.errors import ConfigError, DataError

NOVEL = resolve_input("bundled:pride_and_prejudice").read_text(encoding="utf-8")
ENGLISH = NOVEL[:60_000]
# Li Bai, "Quiet Night Thought", and Wang Zhihuan, "On the Stork Tower" (Tang dynasty, public domain).
CHINESE = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。\n"
HANZI = [c for c in CHINESE if "\u4e00" <= c <= "\u9fff"]


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def trained() -> dict[str, Tokenizer]:
    """One small tokenizer per kind, trained on a slice of the novel plus the poems."""
    return {kind: train_tokenizer([ENGLISH, CHINESE], TokenizerConfig(kind=kind, vocab_size=600)) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", [NOVEL[100_000:104_000], CHINESE], ids=["english", "chinese"])
def test_round_trip(trained: dict[str, Tokenizer], kind: str, text: str) -> None:
    tok = trained[kind]
    ids = tok.encode(text)
    assert ids and all(0 <= i < tok.vocab_size for i in ids)
    assert tok.unk_id not in ids
    decoded = tok.decode(ids)
    if kind == "wordpiece":  # BERT pre-tokenization: exact only up to whitespace
        assert _squash(decoded) == _squash(text)
    else:
        assert decoded == text


@pytest.mark.parametrize("kind", KINDS)
def test_training_is_deterministic(trained: dict[str, Tokenizer], kind: str) -> None:
    # The raw Hugging Face WordPiece and Unigram trainers differ run to run (hash-map order).
    again = train_tokenizer([ENGLISH, CHINESE], TokenizerConfig(kind=kind, vocab_size=600))
    assert again.hf.to_str() == trained[kind].hf.to_str()


def test_bpe_round_trips_unseen_text(trained: dict[str, Tokenizer]) -> None:
    text = "  Ünïcödé, emoji 🎉 and 日本語\r\n\ttabs <|endoftext|> too "
    assert trained["bpe"].decode(trained["bpe"].encode(text)) == text


def test_encode_batch_matches_encode(trained: dict[str, Tokenizer]) -> None:
    texts = [ENGLISH[:300], CHINESE, "x"]
    for tok in trained.values():
        assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


def test_fast_batch_encoding_gives_the_library_encode_batch_ids(trained: dict[str, Tokenizer]) -> None:
    """prepare and encode_batch use encode_batch_fast (no offsets): the same ids as the library's encode_batch,
    special tokens included, on text with odd whitespace, accents and CJK."""
    texts = [NOVEL[200_000:203_000], CHINESE, "  tabs\tand\n\nnewlines  ", "naïve café – “quotes”", ""]
    for tok in trained.values():
        assert hasattr(tok.hf, "encode_batch_fast")  # the pinned tokenizers has it: the fast path is tested
        for special in (False, True):
            want = [e.ids for e in tok.hf.encode_batch(texts, add_special_tokens=special)]
            assert [e.ids for e in fast_encode_batch(tok.hf)(texts, add_special_tokens=special)] == want
            assert tok.encode_batch(texts, add_special_tokens=special) == want


def test_char_tokenizer_on_novel() -> None:
    tok = train_tokenizer([NOVEL], TokenizerConfig(kind="char"))
    assert tok.kind == "char"
    assert tok.special_tokens == ["<|endoftext|>", "<unk>", "<pad>"]
    assert (tok.eos_id, tok.unk_id, tok.pad_id) == (0, 1, 2)
    assert tok.vocab_size == 75 + 3
    chars = {tok.id_to_token(i) for i in range(3, tok.vocab_size)}
    assert chars == set(NOVEL)
    assert {" ", "\n"} <= chars
    assert tok.encode("Darcy\n") == [tok.token_to_id(c) for c in "Darcy\n"]
    assert tok.encode("Darcy 🎉")[-1] == tok.unk_id


def test_char_tokenizer_one_id_per_hanzi() -> None:
    tok = train_tokenizer([CHINESE], TokenizerConfig(kind="char"))
    line = "".join(HANZI)
    ids = tok.encode(line)
    assert len(ids) == len(line)
    assert [tok.id_to_token(i) for i in ids] == HANZI
    assert tok.vocab_size == 3 + len(set(CHINESE))


def test_char_min_frequency_and_lowercase() -> None:
    tok = train_tokenizer(["aaab Q"], TokenizerConfig(kind="char", min_frequency=2))
    assert tok.token_to_id("a") is not None and tok.token_to_id("b") is None
    low = train_tokenizer(["AbC"], TokenizerConfig(kind="char", lowercase=True))
    assert low.decode(low.encode("ABC")) == "abc"


def test_wordpiece_special_tokens(trained: dict[str, Tokenizer]) -> None:
    tok = trained["wordpiece"]
    assert tok.special_tokens == WORDPIECE_SPECIAL_TOKENS
    assert tok.unk_id == 0 and tok.pad_id == 1
    assert tok.eos_id == tok.token_to_id("<|endoftext|>")
    ids = tok.encode("It is a truth.", add_special_tokens=True)
    assert ids[0] == tok.token_to_id("[CLS]") and ids[-1] == tok.token_to_id("[SEP]")
    assert tok.encode("It is a truth.") == ids[1:-1]


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_identical(trained: dict[str, Tokenizer], kind: str, tmp_path: Path) -> None:
    tok = trained[kind]
    path = tok.save(tmp_path)
    assert path == tmp_path / "tokenizer.json"
    again = Tokenizer.load(path)
    sample = [ENGLISH[:2000], CHINESE]
    assert again.encode_batch(sample) == tok.encode_batch(sample)
    assert (again.kind, again.vocab_size) == (tok.kind, tok.vocab_size)
    assert (again.eos_id, again.pad_id, again.unk_id) == (tok.eos_id, tok.pad_id, tok.unk_id)
    plain = hf_tokenizers.Tokenizer.from_file(str(path))  # a plain Hugging Face file
    assert plain.encode(CHINESE, add_special_tokens=False).ids == tok.encode(CHINESE)
    assert Tokenizer.from_hf(plain).kind == kind
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tokenizer file not found"):
        Tokenizer.load(tmp_path / "missing.json")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not a valid tokenizer.json"):
        Tokenizer.load(tmp_path)


def test_dtype_for_vocab() -> None:
    assert dtype_for_vocab(78) == np.uint16
    assert dtype_for_vocab(65_536) == np.uint16
    assert dtype_for_vocab(65_537) == np.uint32
    assert dtype_for_vocab(250_000) == np.uint32


def test_config_validation() -> None:
    assert TokenizerConfig(kind="char", vocab_size=1).vocab_size == 1  # ignored for char
    with pytest.raises(ValueError, match="vocab_size"):
        TokenizerConfig(kind="bpe", vocab_size=31)
    with pytest.raises(ValueError, match="duplicates"):
        TokenizerConfig(special_tokens=["<unk>", "<unk>"])
    with pytest.raises(ValueError, match="unknown-token"):
        TokenizerConfig(kind="unigram", special_tokens=["<|endoftext|>"])
    assert TokenizerConfig(kind="bpe", special_tokens=["<|endoftext|>"]).resolved_special_tokens() == ["<|endoftext|>"]
    with pytest.raises(ConfigError, match="tokenizer.min_frequency"):
        from_dict(TokenizerConfig, {"min_frequency": 0}, prefix="tokenizer")
    custom = TokenizerConfig(kind="wordpiece", special_tokens=["[UNK]", "[PAD]"])
    assert custom.resolved_special_tokens() == ["[UNK]", "[PAD]"]


def test_unigram_pieces_never_span_a_line_break(trained: dict[str, Tokenizer]) -> None:
    # a corpus file is one text: without the split, "ended.\nThe" could become one piece
    vocab = trained["unigram"].hf.get_vocab()
    assert "\n" in vocab and not [p for p in vocab if "\n" in p and p != "\n"]
    text = "He said.\nShe said.\n\nThey left."
    assert trained["unigram"].decode(trained["unigram"].encode(text)) == text
