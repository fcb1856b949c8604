"""Key/value cache for incremental decoding.

Decoding token t needs the keys and values of tokens < t at every layer;
recomputing them costs O(t) per layer per step. The cache stores them in
preallocated buffers so each new token costs one forward over itself.
All rows share one length: ragged prompts are left-padded and masked.
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
        self.length = 0  # positions filled so far (same for every layer once a forward ends)

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
