"""Denoising-autoencoder batches: token sequences, their corrupted copies, and the originals as targets.

Each row is a window x = x_1..x_n of the token stream (n uniform in [min_length, seq_len], start uniform),
corrupted by the noises named in ``noise``, applied in that order (the classic DAE noise: Vincent et al.
2008; for sentences Hill et al. 2016, "Learning Distributed Representations of Sentences from Unlabelled
Data", and Lample et al. 2018, "Unsupervised Machine Translation Using Monolingual Corpora Only"):

    drop      word dropout: token j is deleted when u_j < p_drop (if none is left, the first one stays)
    shuffle   local shuffle: sort positions j by q_j = j + u_j (k + 1), so |sigma(j) - j| <= k
    mask      token masking: token j becomes <mask> when u_j < p_mask

u_j ~ U[0, 1) are drawn per noise as one (B, seq_len) array, in the noise order, from a generator seeded by
(seed, step, micro): ``batch(step, micro)`` is a pure function, so a resumed run sees the same noise.
The noise is indexed by the position in the sequence as that noise sees it (after earlier noises).

    input_ids          (B, L + 1)  corrupted x~ + eos, right-padded with pad      attention_mask (B, L + 1)
    decoder_input_ids  (B, L + 1)  decoder_start, x_1..x_n, pad...                (teacher forcing)
    labels             (B, L + 1)  x_1..x_n, eos, -100...                         (the original, then eos)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fromzero.config import field, require
from fromzero.data.hashing import batch_seed
from fromzero.data.loader import IGNORE_INDEX
from fromzero.data.token_shards import as_token_stream
from fromzero.errors import ConfigError, DataError

NOISES = ("drop", "shuffle", "mask")
MASK_TOKEN = "<mask>"


@dataclass(frozen=True)
class DenoisingTextConfig:
    """The ``objective:`` section of a denoising-autoencoder recipe: which noises, how strong, how long."""

    noise: list[str] = field(["drop", "shuffle", "mask"], help="noises applied in this order: drop | shuffle | mask")
    p_drop: float = field(0.1, help="drop: probability of deleting each token")
    shuffle_k: int = field(3, help="shuffle: no token moves more than k positions")
    p_mask: float = field(0.1, help="mask: probability of replacing each token by <mask>")
    min_length: int = field(8, help="shortest window; lengths are uniform in [min_length, seq_len]")

    def __post_init__(self) -> None:
        for name in self.noise:
            require(name in NOISES, "noise", f"unknown noise {name!r} (known: {', '.join(NOISES)})")
        require(len(set(self.noise)) == len(self.noise), "noise", f"names a noise twice: {self.noise}")
        require(0.0 <= self.p_drop < 1.0, "p_drop", f"must be in [0, 1), got {self.p_drop}")
        require(self.shuffle_k >= 0, "shuffle_k", f"must be >= 0, got {self.shuffle_k}")
        require(0.0 <= self.p_mask <= 1.0, "p_mask", f"must be in [0, 1], got {self.p_mask}")
        require(self.min_length >= 1, "min_length", f"must be >= 1, got {self.min_length}")


def word_dropout(ids: np.ndarray, lengths: np.ndarray, u: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Delete token j of each row where u_j < p, keeping the rest in order, left-aligned; a row that would be
    empty keeps its first token. ids (B, L), lengths (B,), u (B, L) -> (ids, lengths); tail values are 0."""
    L = ids.shape[1]
    real = np.arange(L)[None, :] < lengths[:, None]
    keep = real & (u >= p)
    keep[:, 0] |= real[:, 0] & ~keep.any(axis=1)  # never empty
    order = np.argsort(~keep, axis=1, kind="stable")  # kept positions first, in order
    out = np.take_along_axis(np.where(keep, ids, 0), order, axis=1)
    return out, keep.sum(axis=1)


def local_shuffle(ids: np.ndarray, lengths: np.ndarray, u: np.ndarray, k: int) -> np.ndarray:
    """Reorder each row's first ``lengths`` tokens by q_j = j + u_j (k + 1) (stable); the tail stays put."""
    L = ids.shape[1]
    j = np.arange(L)[None, :]
    q = np.where(j < lengths[:, None], j + u * (k + 1), np.inf)  # padding sorts last, in place
    order = np.argsort(q, axis=1, kind="stable")
    return np.take_along_axis(ids, order, axis=1)


def token_mask(ids: np.ndarray, lengths: np.ndarray, u: np.ndarray, p: float, mask_id: int) -> np.ndarray:
    """Replace token j (j < length) by ``mask_id`` where u_j < p."""
    hit = (np.arange(ids.shape[1])[None, :] < lengths[:, None]) & (u < p)
    return np.where(hit, mask_id, ids)


def corrupt(ids: np.ndarray, lengths: np.ndarray, cfg: DenoisingTextConfig, rng: np.random.Generator,
            mask_id: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The noises of ``cfg.noise`` in order; one ``rng.random((B, L))`` per noise. -> (ids, lengths)."""
    ids, lengths = ids.copy(), lengths.copy()
    for name in cfg.noise:
        u = rng.random(ids.shape)
        if name == "drop":
            ids, lengths = word_dropout(ids, lengths, u, cfg.p_drop)
        elif name == "shuffle":
            ids = local_shuffle(ids, lengths, u, cfg.shuffle_k)
        else:
            if mask_id is None:
                raise ConfigError(f"objective.noise: 'mask' needs a {MASK_TOKEN} token in the tokenizer")
            ids = token_mask(ids, lengths, u, cfg.p_mask, mask_id)
    return ids, lengths


class DenoisingTextBatches:
    """``batch(step, micro)`` -> the dict of the module docstring, a pure function of (seed, step, micro)."""

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int, cfg: DenoisingTextConfig, *,
                 pad_id: int, eos_id: int, decoder_start_id: int, mask_id: int | None) -> None:
        self.tokens = as_token_stream(tokens)
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len and batch_size must be >= 1, got {seq_len} and {batch_size}")
        if cfg.min_length > seq_len:
            raise ConfigError(f"objective.min_length: {cfg.min_length} exceeds the sequence length {seq_len} "
                              "(train.seq_len or model.max_positions); lower min_length")
        if len(self.tokens) < seq_len:
            raise DataError(f"the split has {len(self.tokens)} tokens but seq_len={seq_len} needs at least "
                            f"{seq_len}; use a shorter train.seq_len or more data")
        self.seq_len, self.batch_size, self.seed, self.cfg = seq_len, batch_size, seed, cfg
        self.pad_id, self.eos_id, self.start_id, self.mask_id = pad_id, eos_id, decoder_start_id, mask_id

    def clean(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """B windows (B, L) int64, zero past each row's length, and the lengths (B,)."""
        L, B = self.seq_len, self.batch_size
        lengths = rng.integers(self.cfg.min_length, L + 1, size=B)
        starts = rng.integers(0, len(self.tokens) - lengths + 1)  # (B,): each window fits the stream
        pos = np.arange(L)[None, :]
        ids = np.asarray(self.tokens[np.minimum(starts[:, None] + pos, len(self.tokens) - 1)], dtype=np.int64)
        return np.where(pos < lengths[:, None], ids, 0), lengths

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """The batch of (step, micro): the same windows and noise in every process and run."""
        rng = np.random.default_rng(batch_seed(self.seed, step, micro))
        clean, n = self.clean(rng)
        noisy, m = corrupt(clean, n, self.cfg, rng, self.mask_id)
        B, L = clean.shape
        pos = np.arange(L + 1)[None, :]
        clean_eos = np.concatenate([clean, np.zeros((B, 1), dtype=np.int64)], axis=1)
        noisy_eos = np.concatenate([noisy, np.zeros((B, 1), dtype=np.int64)], axis=1)
        inputs = np.where(pos < m[:, None], noisy_eos, np.where(pos == m[:, None], self.eos_id, self.pad_id))
        labels = np.where(pos < n[:, None], clean_eos, np.where(pos == n[:, None], self.eos_id, IGNORE_INDEX))
        shifted = np.concatenate([np.full((B, 1), self.start_id), clean_eos[:, :-1]], axis=1)
        dec = np.where(pos <= n[:, None], shifted, self.pad_id)
        return {"input_ids": torch.from_numpy(inputs), "attention_mask": torch.from_numpy(pos <= m[:, None]),
                "decoder_input_ids": torch.from_numpy(dec), "labels": torch.from_numpy(labels)}
