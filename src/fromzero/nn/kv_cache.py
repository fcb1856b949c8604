"""Key/value cache for incremental decoding.

Decoding token t needs the keys and values of tokens < t at every layer;
recomputing them costs O(t) per layer per step. The cache stores them in
buffers preallocated once, so each new token costs one forward over itself
and no step allocates cache memory.

Two ways to fill it:

- ``update`` (a forward over T tokens): every row writes positions
  ``[length, length + T)``; ``advance(T)`` moves the shared length on. A
  prompt prefill and T5's decoder use this.
- ``write`` (one token per row, each at its own position): the *slot* layout
  of continuous batching. Row r of the batch is one sequence whose cached
  keys fill positions ``[0, p_r)``; its new token goes to ``p_r``. Rows of
  different lengths share one buffer without left padding, join and leave
  independently (:meth:`rows` gives a view of some rows to prefill,
  :meth:`copy_row` moves a row so the live rows stay in slots ``[0, n)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class KVCache:
    """Per-layer key/value buffers of shape (B, H_kv, max_len, D).

    ``n_kv_head`` is one count for every layer, or one per layer (structured pruning leaves layers with
    different numbers of heads).
    """

    def __init__(self, n_layer: int, batch: int, n_kv_head: int | Sequence[int], head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        heads = [n_kv_head] * n_layer if isinstance(n_kv_head, int) else list(n_kv_head)
        if len(heads) != n_layer:
            raise ValueError(f"{len(heads)} head counts for {n_layer} layers")
        self.keys = [torch.zeros(batch, h, max_len, head_dim, dtype=dtype, device=device) for h in heads]
        self.values = [torch.zeros(batch, h, max_len, head_dim, dtype=dtype, device=device) for h in heads]
        self.max_len = max_len
        self.length = 0  # positions filled by update() so far (same for every layer once a forward ends)
        self._row_index = torch.arange(batch, device=device)  # index_put_ row indices, built once

    @property
    def batch(self) -> int:
        return self.keys[0].shape[0] if self.keys else 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H_kv, T, D) after the cached prefix; return all keys/values so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache full: {end} positions > max_len {self.max_len}")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Mark n more positions as filled (called once per model forward)."""
        self.length += n

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor, span: int,
              same: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Slot layout: write one token per row, k, v (n, H_kv, D), row r at ``positions[r]`` (rows [0, n)).

        ``same``: every position is ``span - 1`` (a plain strided copy instead of a scatter). Returns the
        first ``span`` positions of rows [0, n), each (n, H_kv, span, D): views, no copy. The caller keeps
        ``positions < max_len`` (no check here: it would cost a host sync per layer).
        """
        n = k.shape[0]
        keys, values = self.keys[layer], self.values[layer]
        if same:
            keys[:n, :, span - 1] = k
            values[:n, :, span - 1] = v
        else:
            rows = self._row_index[:n]
            keys.transpose(1, 2).index_put_((rows, positions), k)  # (B, L, H_kv, D) view
            values.transpose(1, 2).index_put_((rows, positions), v)
        return keys[:n, :, :span], values[:n, :, :span]

    def rows(self, start: int, end: int) -> KVCache:
        """A cache over rows [start, end) sharing this one's buffers, its ``length`` 0: prefill them in place."""
        view = KVCache.__new__(KVCache)
        view.keys = [k[start:end] for k in self.keys]
        view.values = [v[start:end] for v in self.values]
        view.max_len, view.length = self.max_len, 0
        view._row_index = self._row_index[:end - start]
        return view

    def reorder(self, index: torch.Tensor) -> None:
        """Row i becomes old row ``index[i]`` in every layer (beam search keeps each hypothesis's parent)."""
        end = self.length
        for buffers in (self.keys, self.values):
            for b in buffers:
                b[:, :, :end] = b[:, :, :end].index_select(0, index)

    def copy_row(self, src: int, dst: int, length: int | None = None) -> None:
        """Copy row ``src``'s first ``length`` positions (default all) over row ``dst`` in every layer."""
        end = self.max_len if length is None else length
        for buffers in (self.keys, self.values):
            for b in buffers:
                b[dst, :, :end] = b[src, :, :end]
