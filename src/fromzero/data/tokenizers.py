"""Tokenizers: char, byte-level BPE, WordPiece and Unigram, all built on Hugging Face ``tokenizers``.

The saved file is a plain Hugging Face ``tokenizer.json`` (loadable by
``tokenizers.Tokenizer.from_file`` and ``transformers``). Nothing extra is
stored: the kind is read back from the model type (WordLevel -> ``char``,
BPE, WordPiece, Unigram) and the special-token roles from well-known names
(:data:`EOS_NAMES`, :data:`PAD_NAMES`, :data:`UNK_NAMES`), so tokenizers
trained elsewhere load too.

Round trips (``decode(encode(text)) == text``):

- ``char``: exact for characters seen in training; unseen ones become ``<unk>``.
- ``bpe`` (byte-level): exact for any text.
- ``unigram``: exact for characters seen in training, except that a literal
  ``▁`` (U+2581, the Metaspace marker) decodes as a space.
- ``wordpiece``: exact only up to whitespace: BERT pre-tokenization splits
  off punctuation and every CJK character, and decoding joins words with
  single spaces (removing the space before common punctuation). A word
  with a character never seen in training becomes ``[UNK]`` as a whole, as
  in BERT.

Training is deterministic for every kind (the same texts and config give a
byte-identical ``tokenizer.json``); see :func:`_continuation_tokens` and
:func:`_canonical_unigram` for what that takes beyond the raw HF trainers.

``lowercase=True`` makes every kind lowercase its input first, so round trips
then hold for lowercased text; WordPiece's BERT normalizer also strips accents
("Café" -> "cafe"), as BERT-uncased does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tokenizers as hf_tokenizers
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers

from fromzero.atomic import write_text
from fromzero.config import field, require
from fromzero.errors import DataError

TokenizerKind = Literal["char", "bpe", "wordpiece", "unigram"]
KINDS: tuple[str, ...] = ("char", "bpe", "wordpiece", "unigram")
DEFAULT_SPECIAL_TOKENS = ["<|endoftext|>", "<unk>", "<pad>"]
# BERT-style special tokens for wordpiece, plus the end-of-text token that joins documents.
WORDPIECE_SPECIAL_TOKENS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "<|endoftext|>"]
# Role lookup by name, first match wins; "[SEP]" is BERT's document separator.
EOS_NAMES = ("<|endoftext|>", "</s>", "<eos>", "[SEP]")
PAD_NAMES = ("<pad>", "[PAD]", "<|padding|>")
UNK_NAMES = ("<unk>", "[UNK]")
_MODEL_KINDS = {"WordLevel": "char", "BPE": "bpe", "WordPiece": "wordpiece", "Unigram": "unigram"}
_CHAR_VOCAB_LIMIT = 1 << 30  # "no limit": a char vocab keeps every character seen
_UNK_CHAR_PENALTY = 1e-4  # the Unigram trainer's score step for characters it must add back
_UNIGRAM_DECIMALS = 5  # far coarser than the trainer's float noise (~1e-11), far finer than real gaps


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype that holds every token id: uint16 up to 65,536 tokens, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def fast_encode_batch(hf: hf_tokenizers.Tokenizer):
    """``hf.encode_batch_fast`` where the library has it (tokenizers >= 0.20): the same ids without tracking
    character offsets, ~1.27x faster on one thread here; else ``hf.encode_batch``."""
    return getattr(hf, "encode_batch_fast", hf.encode_batch)


@dataclass
class TokenizerConfig:
    """How to train a tokenizer (the ``tokenizer:`` section of a recipe)."""

    kind: TokenizerKind = field("char", help="char, bpe (byte-level), wordpiece (BERT) or unigram")
    vocab_size: int = field(8000, help="target vocabulary size incl. special tokens (ignored for char)")
    min_frequency: int = field(1, help="drop tokens seen fewer times (char, bpe, wordpiece)")
    lowercase: bool = field(False, help="lowercase text before tokenizing")
    special_tokens: list[str] = field(
        list(DEFAULT_SPECIAL_TOKENS),
        help="special tokens, first ids; the default becomes [UNK] [PAD] [CLS] [SEP] [MASK] "
        "<|endoftext|> for wordpiece",
    )

    def __post_init__(self) -> None:
        require(self.kind in KINDS, "kind", f"must be one of {', '.join(KINDS)}, got {self.kind!r}")
        require(
            self.kind == "char" or self.vocab_size >= 32,
            "vocab_size",
            f"must be >= 32, got {self.vocab_size}",
        )
        require(self.min_frequency >= 1, "min_frequency", f"must be >= 1, got {self.min_frequency}")
        specials = self.special_tokens
        require(all(isinstance(t, str) and t for t in specials), "special_tokens", "must be non-empty strings")
        require(len(set(specials)) == len(specials), "special_tokens", f"contains duplicates: {specials}")
        needs_unk = self.kind != "bpe"  # byte-level BPE can spell anything; the others need a fallback
        has_unk = any(t in UNK_NAMES for t in self.resolved_special_tokens())
        require(
            not needs_unk or has_unk,
            "special_tokens",
            f"kind {self.kind!r} needs an unknown-token, add one of {', '.join(UNK_NAMES)}",
        )

    def resolved_special_tokens(self) -> list[str]:
        """The special tokens actually used: BERT-style ones for wordpiece when left at the default."""
        if self.kind == "wordpiece" and list(self.special_tokens) == DEFAULT_SPECIAL_TOKENS:
            return list(WORDPIECE_SPECIAL_TOKENS)
        return list(self.special_tokens)


def _first_present(hf: hf_tokenizers.Tokenizer, names: Sequence[str]) -> int | None:
    for name in names:
        token_id = hf.token_to_id(name)
        if token_id is not None:
            return token_id
    return None


class Tokenizer:
    """A thin wrapper over a Hugging Face ``tokenizers.Tokenizer`` (kept as ``.hf``)."""

    def __init__(self, hf: hf_tokenizers.Tokenizer) -> None:
        self.hf = hf
        model_type = type(hf.model).__name__
        if model_type not in _MODEL_KINDS:
            raise DataError(f"unsupported tokenizer model {model_type!r}; use BPE, WordPiece, Unigram or WordLevel")
        self.kind: str = _MODEL_KINDS[model_type]
        self.eos_id = _first_present(hf, EOS_NAMES)
        self.pad_id = _first_present(hf, PAD_NAMES)
        self.unk_id = _first_present(hf, UNK_NAMES)

    @classmethod
    def from_hf(cls, hf: hf_tokenizers.Tokenizer) -> Tokenizer:
        """Wrap an existing Hugging Face tokenizer (kind and special roles are inferred)."""
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return self.hf.get_vocab_size(with_added_tokens=True)

    @property
    def special_tokens(self) -> list[str]:
        """The special tokens, by id."""
        added = self.hf.get_added_tokens_decoder()
        return [tok.content for _, tok in sorted(added.items()) if tok.special]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; ``add_special_tokens`` adds wordpiece's [CLS] .. [SEP] (post-processor)."""
        return self.hf.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[list[int]]:
        """Token ids of each text (encoded in parallel by the Rust library; no character offsets tracked)."""
        encodings = fast_encode_batch(self.hf)(list(texts), add_special_tokens=add_special_tokens)
        return [e.ids for e in encodings]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of ``ids``; special tokens are kept by default so decode inverts encode."""
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        """Id of ``token``, or None if it is not in the vocabulary."""
        return self.hf.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        """Token string of ``token_id``, or None if out of range."""
        return self.hf.id_to_token(int(token_id))

    def save(self, path: str | Path) -> Path:
        """Atomically write ``tokenizer.json``; ``path`` is the file (``*.json``) or its folder."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / "tokenizer.json"
        write_text(path, self.hf.to_str(pretty=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a ``tokenizer.json`` (``path`` is the file or its folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise DataError(f"{path}: tokenizer file not found; run `fromzero prepare` to create it")
        try:
            hf = hf_tokenizers.Tokenizer.from_file(str(path))
        except Exception as err:  # the Rust library raises plain Exception
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"{path}: not a valid tokenizer.json ({reason}); run `fromzero prepare` again") from None
        return cls(hf)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"


def _lowercase(hf: hf_tokenizers.Tokenizer, cfg: TokenizerConfig) -> None:
    if cfg.lowercase:
        hf.normalizer = normalizers.Lowercase()


def _char_tokenizer(cfg: TokenizerConfig, specials: list[str], unk: str | None) -> tuple:
    hf = hf_tokenizers.Tokenizer(models.WordLevel(unk_token=unk))
    _lowercase(hf, cfg)
    # [\s\S] is explicit about matching newlines, whatever the regex engine's dot does.
    hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    hf.decoder = decoders.Fuse()  # concatenate characters exactly, no spaces added
    trainer = trainers.WordLevelTrainer(
        vocab_size=_CHAR_VOCAB_LIMIT,
        min_frequency=cfg.min_frequency,
        special_tokens=specials,
        show_progress=False,
    )
    return hf, trainer


def _bpe_tokenizer(cfg: TokenizerConfig, specials: list[str], unk: str | None) -> tuple:
    hf = hf_tokenizers.Tokenizer(models.BPE())
    _lowercase(hf, cfg)
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    # All 256 byte symbols up front, so any text (Chinese, emoji) is representable.
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return hf, trainer


def _wordpiece_tokenizer(cfg: TokenizerConfig, specials: list[str], unk: str | None) -> tuple:
    hf = hf_tokenizers.Tokenizer(models.WordPiece(unk_token=unk))
    hf.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=cfg.lowercase
    )
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.decoder = decoders.WordPiece()
    if "[CLS]" in specials and "[SEP]" in specials:
        # Only used when add_special_tokens=True, so exported tokenizers behave like BERT's.
        cls_id, sep_id = specials.index("[CLS]"), specials.index("[SEP]")
        hf.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
    trainer = trainers.WordPieceTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=specials,
        show_progress=False,
    )
    return hf, trainer


def _unigram_tokenizer(cfg: TokenizerConfig, specials: list[str], unk: str | None) -> tuple:
    hf = hf_tokenizers.Tokenizer(models.Unigram())
    _lowercase(hf, cfg)
    # Line breaks are pieces of their own: without the split a corpus file's "end.\nNext" is one word, so
    # pieces span lines (477 of 8,000 on the Bible corpus) and a text without spaces (Chinese) is one huge
    # word. prepend_scheme="never": "always" would drop a leading space on decode, breaking the round trip.
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[\r\n]"), behavior="isolated"),
        pre_tokenizers.Metaspace(prepend_scheme="never")])
    hf.decoder = decoders.Metaspace(prepend_scheme="never")
    trainer = trainers.UnigramTrainer(
        vocab_size=cfg.vocab_size, special_tokens=specials, unk_token=unk, show_progress=False
    )
    return hf, trainer


_BUILDERS = {
    "char": _char_tokenizer,
    "bpe": _bpe_tokenizer,
    "wordpiece": _wordpiece_tokenizer,
    "unigram": _unigram_tokenizer,
}


def _continuation_tokens(hf: hf_tokenizers.Tokenizer, texts: Sequence[str]) -> list[str]:
    """Every ``##c`` that can continue a word, for each character ``c`` of ``texts``, sorted.

    The WordPiece trainer adds ``##c`` tokens in hash-map order, so ids (and the
    tie-breaks between equally frequent merges) would change from run to run.
    Handing them to the trainer in a fixed order makes training deterministic,
    and lets any word of seen characters be spelled (no ``[UNK]`` for "15th").
    """
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    tails: set[str] = set()
    for c in chars:  # run "a" + c through the real pipeline: CJK and punctuation never continue a word
        words = hf.pre_tokenizer.pre_tokenize_str(hf.normalizer.normalize_str("a" + c))
        if len(words) == 1:
            tails.update(words[0][0][1:])
    return sorted("##" + c for c in tails)


def _without_added(hf: hf_tokenizers.Tokenizer, tokens: set[str]) -> hf_tokenizers.Tokenizer:
    """Unregister ``tokens`` as added (special) tokens; they stay in the model's vocabulary."""
    data = json.loads(hf.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in tokens]
    return hf_tokenizers.Tokenizer.from_str(json.dumps(data))


def _canonical_unigram(hf: hf_tokenizers.Tokenizer, specials: list[str]) -> hf_tokenizers.Tokenizer:
    """Remove run-to-run noise from a trained Unigram model so equal inputs give equal files.

    The trainer sums floats in hash-map order (scores differ in the ~11th
    decimal, so near-ties swap places) and gives characters missing from the
    final model scores ``min + k * 1e-4`` with ``k`` in hash-set order. We
    give those characters the minimum score, round scores to
    ``_UNIGRAM_DECIMALS`` and sort by (score, token).
    """
    data = json.loads(hf.to_str())
    vocab = data["model"]["vocab"]
    head = [p for p in vocab if p[0] in specials]  # specials keep their ids, at the front
    pieces = [p for p in vocab if p[0] not in specials]
    if not pieces:
        return hf
    low = min(score for _, score in pieces)

    def canonical(token: str, score: float) -> float:
        steps = (score - low) / _UNK_CHAR_PENALTY
        if len(token) == 1 and abs(steps - round(steps)) < 1e-6:  # a character given a penalty score
            score = low
        return round(score, _UNIGRAM_DECIMALS)

    pieces = sorted(([t, canonical(t, s)] for t, s in pieces), key=lambda p: (-p[1], p[0]))
    data["model"]["vocab"] = head + pieces
    data["model"]["unk_id"] = next(i for i, (t, _) in enumerate(head) if t in UNK_NAMES)
    return hf_tokenizers.Tokenizer.from_str(json.dumps(data))


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
    """Train a tokenizer of kind ``cfg.kind`` on ``texts``; special tokens get the first ids, in order.

    Training is deterministic: the same texts and config give the same ``tokenizer.json``.
    """
    texts = texts if isinstance(texts, list) else list(texts)
    specials = cfg.resolved_special_tokens()
    unk = next((t for t in specials if t in UNK_NAMES), None)
    hf, trainer = _BUILDERS[cfg.kind](cfg, specials, unk)
    continuation = _continuation_tokens(hf, texts) if cfg.kind == "wordpiece" else []
    if continuation:
        trainer.special_tokens = specials + continuation
    hf.train_from_iterator(texts, trainer=trainer)
    if continuation:
        hf = _without_added(hf, set(continuation))
    if cfg.kind == "unigram":
        hf = _canonical_unigram(hf, specials)
    tokenizer = Tokenizer(hf)
    if tokenizer.vocab_size <= len(specials):
        raise DataError("tokenizer training found no text; the corpus is empty")
    return tokenizer
