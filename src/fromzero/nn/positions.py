"""Position information: learned absolute embeddings, rotary embeddings (RoPE), T5 relative bias.

RoPE (Su et al., 2021, https://arxiv.org/abs/2104.09864) rotates each pair of
query/key channels by an angle proportional to the position m:
    theta_i = base^(-2i/d),   R(m) = rotation by m*theta_i
so that <R(m) q, R(n) k> depends only on q, k and the offset m - n. We use the
"rotate half" channel pairing (i, i + d/2), as Llama and GPT-NeoX do.

T5's relative position bias (Raffel et al., 2019, https://arxiv.org/abs/1910.10683,
section 2.1; after Shaw et al., 2018, https://arxiv.org/abs/1803.02155) adds a
learned scalar per head and per *bucket* of the offset j - i to the attention
logits:  scores_h(i, j) = q_i . k_j + b_h[bucket(j - i)].
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LearnedPositions(nn.Module):
    """A trainable vector per absolute position (GPT-2, BERT)."""

    def __init__(self, max_positions: int, dim: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.weight = nn.Parameter(torch.zeros(max_positions, dim))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """positions (B, T) or (T,) -> (B, T, C) or (T, C)."""
        return nn.functional.embedding(positions, self.weight)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables for RoPE; not trainable and not saved in checkpoints."""

    def __init__(self, head_dim: int, max_positions: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.outer(torch.arange(max_positions, dtype=torch.float64), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # (P, D): same angle for channels i and i + D/2
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Rotate q (B, H, T, D) and k (B, Hkv, T, D) by positions (B, T) or (T,)."""
        cos = self.cos[positions].to(q.dtype)  # (B, T, D) or (T, D)
        sin = self.sin[positions].to(q.dtype)
        if cos.dim() == 3:  # broadcast over heads
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def relative_position_bucket(relative_position: torch.Tensor, bidirectional: bool = True, n_buckets: int = 32,
                             max_distance: int = 128) -> torch.Tensor:
    """Map offsets ``j - i`` (memory position minus query position) to bucket ids in [0, n_buckets).

    As in Mesh TensorFlow's T5 (and Hugging Face's ``T5Attention._relative_position_bucket``):
    bidirectional attention gives half of the buckets to positive offsets
    (keys after the query); unidirectional (causal) attention maps every
    positive offset to 0 and uses all buckets for -offset >= 0. Of the
    n buckets left for a distance r >= 0, the first n/2 are exact
    (r = 0 .. n/2 - 1) and the rest are logarithmic up to ``max_distance``:

        bucket(r) = r                                                    if r < n/2
                  = min(n - 1, n/2 + floor(log(r / (n/2)) / log(max_distance / (n/2)) * n/2))   otherwise

    so every distance >= max_distance shares the last bucket.
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        n_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * n_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = n_buckets // 2
    is_small = distance < max_exact
    # clamp only avoids log(0) in the branch where() discards; large distances are unchanged
    large = max_exact + (
        torch.log(distance.clamp(min=max_exact).float() / max_exact)
        / math.log(max_distance / max_exact) * (n_buckets - max_exact)
    ).long()
    large = large.clamp(max=n_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
    """T5's bucketed relative position bias: ``forward(q_len, k_len) -> (1, H, q_len, k_len)``.

    ``weight`` (n_buckets, n_head) holds one learned scalar per bucket and head
    (Hugging Face: ``relative_attention_bias.weight``). T5 computes it once per
    stack, in the first layer, and every layer adds the same bias to its logits.
    """

    def __init__(self, n_head: int, n_buckets: int = 32, max_distance: int = 128,
                 bidirectional: bool = True) -> None:
        super().__init__()
        need = n_buckets // 2 if bidirectional else n_buckets
        if need < 2 or max_distance <= need // 2:
            raise ValueError(f"relative bias needs n_buckets >= {4 if bidirectional else 2} and "
                             f"max_distance > {need // 2}, got {n_buckets}, {max_distance}")
        self.n_head, self.n_buckets, self.max_distance = n_head, n_buckets, max_distance
        self.bidirectional = bidirectional
        self.weight = nn.Parameter(torch.zeros(n_buckets, n_head))

    def forward(self, q_len: int, k_len: int, offset: int = 0) -> torch.Tensor:
        """Bias for queries at positions offset .. offset + q_len - 1 over keys 0 .. k_len - 1.

        ``offset`` is the number of cached positions when decoding incrementally.
        """
        device = self.weight.device
        query = torch.arange(offset, offset + q_len, device=device)[:, None]
        key = torch.arange(k_len, device=device)[None, :]
        bucket = relative_position_bucket(key - query, self.bidirectional, self.n_buckets, self.max_distance)
        values = nn.functional.embedding(bucket, self.weight)  # (q_len, k_len, H)
        return values.permute(2, 0, 1).unsqueeze(0)  # (1, H, q_len, k_len)
