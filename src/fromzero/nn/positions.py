"""Position information: learned absolute embeddings and rotary embeddings (RoPE).

RoPE (Su et al., 2021, https://arxiv.org/abs/2104.09864) rotates each pair of
query/key channels by an angle proportional to the position m:
    theta_i = base^(-2i/d),   R(m) = rotation by m*theta_i
so that <R(m) q, R(n) k> depends only on q, k and the offset m - n. We use the
"rotate half" channel pairing (i, i + d/2), as Llama and GPT-NeoX do.
"""

from __future__ import annotations

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
