"""Documents -> training and validation token streams, cut into shards with resumable checkpoints.

Each kept document contributes its ids plus the end-of-text token, cut into
chunks of ``chunk_tokens``. Chunk ``k`` goes to validation iff
``floor((k+1)*f + u) > floor(k*f + u)``, with ``u`` in [0, 1) fixed by the
seed and the document's content key: a short document (one chunk) goes to
validation with probability ``f`` by its hash bucket, a long one (a book)
gives every ``1/f``-th chunk, from a document-dependent offset. The split
depends on nothing but the document and the seed, so it is the same for
any number of workers or slices, and validation text never overlaps
training text.

When a training shard fills, both splits are flushed and a checkpoint
records the document being cut and how many of its tokens each split has
already written; a resumed run re-encodes that one document and skips them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fromzero.data.hashing import unit_uniform
from fromzero.data.shard_writer import ShardWriter

SPLITS = ("train", "val")
Checkpoint = Callable[[int, dict[str, int]], None]  # (document index, tokens of it written per split)


def validation_chunks(n_chunks: int, fraction: float, u: float) -> np.ndarray:
    """Boolean mask of the chunks held out: an evenly spread ``fraction`` of them, offset by ``u``."""
    k = np.arange(n_chunks, dtype=np.float64)
    return np.floor((k + 1) * fraction + u) > np.floor(k * fraction + u)


class SplitRouter:
    """Routes each document's chunks to the ``train`` / ``val`` writers and checkpoints on full shards."""

    def __init__(self, writers: dict[str, ShardWriter], chunk_tokens: int, val_fraction: float, seed: int,
                 eos_id: int | None, on_checkpoint: Checkpoint) -> None:
        self.writers, self.chunk, self.fraction, self.seed = writers, chunk_tokens, val_fraction, seed
        self.eos = None if eos_id is None else np.array([eos_id], dtype=writers["train"].dtype)
        self.on_checkpoint = on_checkpoint

    def add(self, index: int, ids: np.ndarray, key: int, skip: dict[str, int] | None = None) -> None:
        """Route document ``index`` (``ids``, content ``key``); ``skip`` tokens per split were already written."""
        seq = ids if self.eos is None else np.concatenate([ids, self.eos])
        if len(seq) == 0:
            return
        n_chunks = math.ceil(len(seq) / self.chunk)
        held_out = validation_chunks(n_chunks, self.fraction, unit_uniform(self.seed, key))
        done = dict.fromkeys(SPLITS, 0)  # tokens of this document routed to each split so far
        skip = skip or dict.fromkeys(SPLITS, 0)
        for k in range(n_chunks):
            split = "val" if held_out[k] else "train"
            piece = seq[k * self.chunk : (k + 1) * self.chunk]
            already = max(0, min(len(piece), skip[split] - done[split]))
            done[split] += already
            piece = piece[already:]
            if len(piece):
                self._append(split, piece, k == n_chunks - 1, index, done)

    def _append(self, split: str, piece: np.ndarray, last: bool, index: int, done: dict[str, int]) -> None:
        writer = self.writers[split]
        while len(piece):
            take = min(len(piece), writer.room())
            writer.append(piece[:take])
            done[split] += take
            piece = piece[take:]
            if last and not len(piece):
                writer.end_document()
            if writer.full:
                self.checkpoint(index, done)

    def checkpoint(self, index: int, done: dict[str, int]) -> None:
        """Write every buffered token as shards, then let the caller record the resume point."""
        for split in SPLITS:
            self.writers[split].flush()
        self.on_checkpoint(index, dict(done))
