"""Word boundaries of token streams, for whole-word masking: WordPiece ``##`` pieces, or jieba for Chinese.

A word id per token (-1 for special tokens) groups the tokens of one word, so masking can select whole
words; a bool "word starts" array parallel to a token stream marks where each word begins.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

import numpy as np

from fromzero.data.token_shards import ShardedTokens, token_chunks
from fromzero.errors import DataError


def wordpiece_word_ids(tokens: Sequence[str], specials: Collection[str] = ("[CLS]", "[SEP]", "[PAD]", "[MASK]")
                       ) -> list[int]:
    """Word index per WordPiece token: a ``##`` token continues the previous word; specials get -1."""
    out: list[int] = []
    word = -1
    for i, tok in enumerate(tokens):
        if tok in specials:
            out.append(-1)
            continue
        if not (tok.startswith("##") and i > 0 and out[-1] >= 0):
            word += 1
        out.append(word)
    return out


def chinese_word_ids(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Word index per token of ``text``, words from the jieba segmenter (accurate mode, HMM for new words).

    ``offsets`` are each token's (start, end) characters in ``text`` (Hugging Face ``Encoding.offsets``);
    tokens with empty offsets (specials) get -1. A token belongs to the jieba word holding its first
    character; a token that straddles a word boundary joins the words it covers into one group, so a
    group is always a whole number of tokens. Non-Chinese runs are words too (jieba keeps "hello" whole).
    This is Chinese whole-word masking (Cui et al. 2019, https://arxiv.org/abs/1906.08101, used LTP;
    jieba is the segmenter here). Requires ``pip install jieba``.
    """
    try:
        import jieba
    except ImportError:
        raise DataError("Chinese whole-word masking needs the jieba segmenter: pip install jieba") from None
    jieba.setLogLevel(logging.WARNING)  # jieba logs its dictionary loading at DEBUG to stderr
    starts = np.array([start for _, start, _ in jieba.tokenize(text)] or [0])
    out: list[int] = []
    group, reach = -1, -1  # reach: the last jieba word covered by the current group
    for start, end in offsets:
        if end <= start:
            out.append(-1)
            continue
        first = int(np.searchsorted(starts, start, side="right")) - 1
        last = int(np.searchsorted(starts, end - 1, side="right")) - 1
        if first > reach:
            group += 1
        reach = max(reach, last)
        out.append(group)
    return out


def chinese_word_starts(tokens: np.ndarray | ShardedTokens, vocab: Sequence[str],
                        special_ids: Collection[int] = ()) -> np.ndarray:
    """Word starts of a token-id stream of Chinese text, segmented by jieba (see :func:`chinese_word_ids`).

    The text is rebuilt from the token strings (``vocab``: tokens by id; WordPiece ``##`` marks dropped;
    for WordPiece and char vocabularies, not byte-level BPE), with a line break for each special token.
    """
    special = set(special_ids)
    pieces = [t[2:] if t.startswith("##") else t for t in vocab]
    parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    pos = 0
    for i in (i for _, chunk in token_chunks(tokens) for i in chunk.tolist()):
        piece = "\n" if i in special else pieces[i]
        offsets.append((pos, pos) if i in special else (pos, pos + len(piece)))
        parts.append(piece)
        pos += len(piece)
    return word_starts_from_word_ids(chinese_word_ids("".join(parts), offsets))


def word_starts_from_word_ids(word_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Bool array: True where a token begins a new word (its word id differs from the previous token's)."""
    ids = np.asarray(word_ids)
    starts = np.ones(len(ids), dtype=bool)
    starts[1:] = ids[1:] != ids[:-1]
    return starts


class TokenLookup:
    """``table[tokens[key]]`` computed when indexed: a per-token property of a sharded stream (e.g. word
    starts) without an array as long as the stream."""

    def __init__(self, tokens: ShardedTokens, table: np.ndarray) -> None:
        self.tokens, self.table = tokens, table

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, key) -> np.ndarray:
        return self.table[self.tokens[key]]


def wordpiece_word_starts(tokens: np.ndarray | ShardedTokens, vocab: Sequence[str]) -> np.ndarray | TokenLookup:
    """Word starts of a token-id stream for a WordPiece vocabulary (tokens by id): not a ``##`` token.

    A :class:`ShardedTokens` stream gets a :class:`TokenLookup` (computed per window) instead of an array."""
    starts = ~np.array([t.startswith("##") for t in vocab], dtype=bool)
    return TokenLookup(tokens, starts) if isinstance(tokens, ShardedTokens) else starts[np.asarray(tokens)]
