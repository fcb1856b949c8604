"""Word2Vec training batches: centers with their windows, and negatives, from one token stream.

Each row is one center word and the context words of its window, i.e. up to 2W (center, context) pairs:

1. frequent-word subsampling as word2vec.c and gensim do it: an occurrence of word w is kept with
   probability ``keep(w) = min(1, sqrt(t / f(w)) + t / f(w))``, ``f(w) = count(w) / total`` (``t = 0``: keep
   all). (The paper's eq. 5 keeps only sqrt(t/f): ~20% fewer tokens per pass at t = 1e-4, and measurably
   worse vectors on a small corpus, docs/24-classic-baselines.md.) Discarded occurrences vanish from the
   stream, so windows reach past them, as in word2vec.c;
2. the center is an occurrence drawn uniformly among the kept ones (rejection sampling);
3. its window size b is uniform in 1..W (word2vec.c's "reduced window"), and the context is the b nearest
   kept words on each side (looking at most ``SCAN * W`` positions away, never past the stream's ends);
4. K negatives for every (center, context slot) pair, drawn from the unigram distribution raised to 0.75:
   ``P(w) = count(w)^0.75 / sum_v count(v)^0.75``. Each pair gets its own, as in word2vec.c: K negatives
   shared by a row's up to 2W pairs make fewer, more correlated negative updates and worse vectors.

Ids in ``exclude_ids`` (special tokens: end-of-text, padding, unknown) count as absent: never a center, a
context word or a negative. Windows may cross document boundaries. Counts come from the training stream;
a validation source reuses them (``counts=``). Like every batch source here, ``batch(step, micro)`` is a
pure function of ``(seed, step, micro)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from fromzero.config import field, require
from fromzero.data.hashing import batch_seed
from fromzero.data.token_shards import as_token_stream, token_counts
from fromzero.errors import DataError

SCAN = 4  # a window looks at most SCAN * W positions away for its kept words
_MAX_ROUNDS = 1000  # rejection rounds for the centers before giving up


@dataclass(frozen=True)
class Word2VecBatchConfig:
    """The ``objective:`` section of a word2vec recipe: window, negatives, subsampling."""

    window: int = field(5, help="largest window W: b in 1..W words on each side of the center")
    negatives: int = field(5, help="K: negative words sampled per (center, context word) pair")
    subsample: float = field(1e-5, help="t of the subsampling keep(w) = min(1, sqrt(t/f) + t/f); 0 keeps every word")
    unigram_power: float = field(0.75, help="negatives are drawn with P(w) ~ count(w)^power")

    def __post_init__(self) -> None:
        require(self.window >= 1, "window", f"must be >= 1, got {self.window}")
        require(self.negatives >= 1, "negatives", f"must be >= 1, got {self.negatives}")
        require(self.subsample >= 0, "subsample", f"must be >= 0, got {self.subsample}")
        require(self.unigram_power >= 0, "unigram_power", f"must be >= 0, got {self.unigram_power}")


def keep_probabilities(counts: np.ndarray, t: float) -> np.ndarray:
    """keep(w) = min(1, sqrt(t / f(w)) + t / f(w)) per id (V,), f = count / total (word2vec.c's rule);
    0 for unseen ids; 1 for seen ids if t = 0."""
    counts = np.asarray(counts, dtype=np.float64)
    seen = counts > 0
    if t == 0:
        return seen.astype(np.float64)
    freq = counts / max(counts.sum(), 1.0)
    keep = np.zeros_like(freq)
    ratio = t / freq[seen]
    keep[seen] = np.minimum(1.0, np.sqrt(ratio) + ratio)
    return keep


def negative_probabilities(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """P(w) = count(w)^power / sum_v count(v)^power per id (V,); unseen ids get 0."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.where(counts > 0, counts, 0.0) ** power * (counts > 0)
    total = weights.sum()
    if total <= 0:
        raise DataError("word2vec: the training stream has no word to sample negatives from")
    return weights / total


class Word2VecBatches:
    """``batch(step, micro)`` -> ``{"center" (B,), "context" (B, 2W), "context_mask" (B, 2W),
    "negatives" (B, 2W, K)}``.

    Context slots 0..W-1 hold the left words, nearest first; W..2W-1 the right words, nearest first; unused
    slots are 0 with ``context_mask`` False. ``negatives[b, j]`` are the K negatives of the pair (center b,
    context slot j), drawn for every slot, used or not (CBOW, one prediction per row, uses slot 0's).
    """

    def __init__(self, tokens: np.ndarray, vocab_size: int, batch_size: int, seed: int, cfg: Word2VecBatchConfig,
                 exclude_ids: Iterable[int] = (), counts: np.ndarray | None = None) -> None:
        self.tokens = as_token_stream(tokens)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(self.tokens) < 2:
            raise DataError(f"word2vec: the stream has {len(self.tokens)} tokens; it needs at least 2")
        self.batch_size, self.seed, self.cfg = batch_size, seed, cfg
        counts = token_counts(self.tokens, vocab_size) if counts is None else np.asarray(counts, dtype=np.int64)
        counts = counts[:vocab_size].copy()
        counts[[i for i in exclude_ids if 0 <= i < vocab_size]] = 0
        self.counts = counts
        self.keep = keep_probabilities(counts, cfg.subsample)  # (V,)
        self.negative_p = negative_probabilities(counts, cfg.unigram_power)  # (V,)
        self._negative_cdf = np.cumsum(self.negative_p)
        # share of the stream's occurrences kept: sets how many candidates a rejection round draws
        self._kept_share = float((self.keep * counts).sum() / max(len(self.tokens), 1))
        if self._kept_share <= 0:
            raise DataError("word2vec: no word of the stream can be a center (every id is excluded)")

    def _centers(self, rng: np.random.Generator) -> np.ndarray:
        """B stream positions, uniform over the kept occurrences (rejection sampling), (B,) int64."""
        chosen, need = [], self.batch_size
        for _ in range(_MAX_ROUNDS):
            size = int(min(max(2 * need / self._kept_share, 64), 1 << 22))
            candidates = rng.integers(0, len(self.tokens), size=size)
            ok = rng.random(size) < self.keep[np.asarray(self.tokens[candidates], dtype=np.int64)]
            chosen.append(candidates[ok][:need])
            need -= len(chosen[-1])
            if need == 0:
                return np.concatenate(chosen)
        raise DataError("word2vec: too few kept words to draw centers from; lower objective.subsample's t")

    def _contexts(self, rng: np.random.Generator, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The b nearest kept words on each side of every center: context (B, 2W) and its mask."""
        w, n = self.cfg.window, len(self.tokens)
        b = rng.integers(1, w + 1, size=len(centers))  # (B,) reduced window
        dist = np.arange(1, SCAN * w + 1)  # (S,)
        pos = np.stack([centers[:, None] - dist, centers[:, None] + dist], axis=1)  # (B, 2, S): left, right
        inside = (pos >= 0) & (pos < n)
        tok = np.asarray(self.tokens[np.clip(pos, 0, n - 1)], dtype=np.int64)  # (B, 2, S)
        kept = inside & (rng.random(pos.shape) < self.keep[tok])
        rank = np.cumsum(kept, axis=-1)  # (B, 2, S): 1 for the nearest kept word on that side
        take = kept & (rank <= b[:, None, None])
        rows, side, d = np.nonzero(take)
        context = np.zeros((len(centers), 2 * w), dtype=np.int64)
        mask = np.zeros((len(centers), 2 * w), dtype=bool)
        slots = side * w + rank[rows, side, d] - 1
        context[rows, slots] = tok[rows, side, d]
        mask[rows, slots] = True
        return context, mask

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """The batch of (step, micro): the same numbers in every process and run."""
        rng = np.random.default_rng(batch_seed(self.seed, step, micro))
        centers = self._centers(rng)
        context, mask = self._contexts(rng, centers)
        draws = rng.random((self.batch_size, 2 * self.cfg.window, self.cfg.negatives))
        negatives = np.searchsorted(self._negative_cdf, draws * self._negative_cdf[-1], side="right")
        negatives = np.minimum(negatives, len(self._negative_cdf) - 1)
        return {"center": torch.from_numpy(np.asarray(self.tokens[centers], dtype=np.int64)),
                "context": torch.from_numpy(context), "context_mask": torch.from_numpy(mask),
                "negatives": torch.from_numpy(negatives.astype(np.int64))}
