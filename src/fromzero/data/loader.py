"""Batches of token windows for language modelling, as dicts of tensors.

Training batches (:class:`RandomWindows`) are a pure function of
``(seed, step, micro)``: resuming at step N needs no replay of steps
0..N-1, and any two processes agree on the batch for a given step.
Evaluation batches (:func:`sequential_windows`) cover a split exactly once.
With N processes, :class:`RankRows` gives rank r its contiguous slice of the
rows of the same global batch, so the N ranks together see exactly what one
process would.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from fromzero.data.hashing import batch_seed, splitmix64
from fromzero.errors import DataError

__all__ = ["IGNORE_INDEX", "RandomWindows", "RankRows", "batch_seed", "count_windows", "rank_rows",
           "sequential_windows", "splitmix64"]

IGNORE_INDEX = -100  # label value cross-entropy skips (PyTorch's default ignore_index)
def _check_tokens(tokens: np.ndarray) -> None:
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D array, got shape {tokens.shape}")


class RandomWindows:
    """Random training windows: ``batch(step, micro)`` depends only on (seed, step, micro).

    Offsets are uniform in ``[0, len(tokens) - seq_len - 1]`` so each window
    has ``seq_len`` inputs and the ``seq_len`` next tokens as labels.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int) -> None:
        _check_tokens(tokens)
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len and batch_size must be >= 1, got {seq_len} and {batch_size}")
        if len(tokens) < seq_len + 1:
            raise DataError(
                f"the training split has {len(tokens)} tokens but seq_len={seq_len} needs at least "
                f"{seq_len + 1}; use a shorter seq_len or more data"
            )
        self.tokens = tokens
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.seed = seed
        self._positions = np.arange(seq_len + 1)

    @property
    def tokens_per_batch(self) -> int:
        """Input tokens in one batch (batch_size * seq_len)."""
        return self.batch_size * self.seq_len

    def offsets(self, step: int, micro: int = 0) -> torch.Tensor:
        """Window start positions for (step, micro), shape (B,)."""
        gen = torch.Generator().manual_seed(batch_seed(self.seed, step, micro))
        high = len(self.tokens) - self.seq_len  # exclusive bound: last start is len - seq_len - 1
        return torch.randint(0, high, (self.batch_size,), generator=gen)

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """``{"input_ids": (B, T), "labels": (B, T)}`` int64, labels = inputs shifted left by one."""
        return self.batch_rows(step, micro, 0, self.batch_size)

    def batch_rows(self, step: int, micro: int, start: int, stop: int) -> dict[str, torch.Tensor]:
        """Rows ``[start, stop)`` of ``batch(step, micro)``, reading only those windows (one rank's share)."""
        starts = self.offsets(step, micro).numpy()[start:stop]
        windows = np.asarray(self.tokens[starts[:, None] + self._positions], dtype=np.int64)  # (B, T+1)
        windows = torch.from_numpy(windows)
        return {"input_ids": windows[:, :-1], "labels": windows[:, 1:]}


def _window_spans(n_tokens: int, seq_len: int, stride: int) -> Iterator[tuple[int, int, int]]:
    """(begin, end, first scored position) of each window; targets are tokens[begin+1 : end+1]."""
    n_targets = n_tokens - 1
    prev_end = 0
    for begin in range(0, n_targets, stride):
        end = min(begin + seq_len, n_targets)
        yield begin, end, prev_end - begin  # positions before prev_end were scored by earlier windows
        prev_end = end
        if end == n_targets:
            break


def count_windows(n_tokens: int, seq_len: int, stride: int | None = None) -> int:
    """How many windows :func:`sequential_windows` yields for ``n_tokens`` tokens (for progress bars)."""
    return sum(1 for _ in _window_spans(n_tokens, seq_len, stride or seq_len))


def _collate(tokens: np.ndarray, spans: list[tuple[int, int, int]], seq_len: int) -> dict[str, torch.Tensor]:
    b = len(spans)
    input_ids = torch.zeros(b, seq_len, dtype=torch.long)
    labels = torch.full((b, seq_len), IGNORE_INDEX, dtype=torch.long)
    loss_mask = torch.zeros(b, seq_len, dtype=torch.bool)
    for row, (begin, end, first) in enumerate(spans):
        window = torch.from_numpy(np.asarray(tokens[begin : end + 1], dtype=np.int64))
        n = end - begin
        input_ids[row, :n] = window[:-1]
        labels[row, first:n] = window[1 + first :]
        loss_mask[row, first:n] = True
    return {"input_ids": input_ids, "labels": labels, "loss_mask": loss_mask}


def sequential_windows(
    tokens: np.ndarray, seq_len: int, batch_size: int, stride: int | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Windows covering ``tokens`` once, in order, for evaluation.

    Windows start every ``stride`` tokens (default ``seq_len``: no overlap).
    Each batch is ``{"input_ids", "labels", "loss_mask"}``, all (B, seq_len);
    ``loss_mask`` marks the positions scored by this window: with a smaller
    stride a window sees earlier tokens as context but scores only new ones,
    so every token after the first is scored exactly once overall. Unscored
    positions (context, padding of the last window) have label -100 and
    input 0. The last batch may have fewer than ``batch_size`` rows.
    """
    _check_tokens(tokens)
    stride = seq_len if stride is None else stride
    if seq_len < 1 or batch_size < 1 or not 1 <= stride <= seq_len:
        raise ValueError(
            f"need seq_len >= 1, batch_size >= 1 and 1 <= stride <= seq_len; "
            f"got seq_len={seq_len}, batch_size={batch_size}, stride={stride}"
        )
    spans: list[tuple[int, int, int]] = []
    for span in _window_spans(len(tokens), seq_len, stride):
        spans.append(span)
        if len(spans) == batch_size:
            yield _collate(tokens, spans, seq_len)
            spans = []
    if spans:
        yield _collate(tokens, spans, seq_len)


def rank_rows(rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank ``rank``'s rows ``[start, stop)`` of a batch of ``rows``: contiguous, as even as possible
    (``[r*B/N, (r+1)*B/N)`` when N divides B)."""
    return rank * rows // world_size, (rank + 1) * rows // world_size


class RankRows:
    """One rank's share of every batch of ``source``: rows ``[r*B/N, (r+1)*B/N)`` of the global batch.

    A source with ``batch_rows(step, micro, start, stop)`` (e.g. :class:`RandomWindows`) builds only those
    rows; any other source builds the whole batch and every tensor whose first dimension is its row count
    is sliced (0-d tensors, e.g. a mixing weight, are shared). ``batch_size`` is the global batch size.
    """

    def __init__(self, source, batch_size: int, rank: int, world_size: int) -> None:
        self.source, self.batch_size, self.rank, self.world_size = source, batch_size, rank, world_size

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        if hasattr(self.source, "batch_rows"):
            start, stop = rank_rows(self.batch_size, self.rank, self.world_size)
            return self.source.batch_rows(step, micro, start, stop)
        full = self.source.batch(step, micro)
        rows = next((v.shape[0] for v in full.values() if v.ndim > 0), 0)  # the last batch of an epoch may be short
        start, stop = rank_rows(rows, self.rank, self.world_size)
        return {k: v[start:stop] if v.ndim > 0 and v.shape[0] == rows else v for k, v in full.items()}
