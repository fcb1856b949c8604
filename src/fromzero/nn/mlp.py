"""Position-wise feed-forward networks.

MLP (GPT-2/BERT):  FFN(x) = W2 GELU(W1 x + b1) + b2
SwiGLU (Shazeer, 2020; Llama):  FFN(x) = W2 (SiLU(W_gate x) * (W_up x))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.nn.linear import Linear


class MLP(nn.Module):
    """Two linear layers with a GELU (tanh approximation, as GPT-2) in between."""

    def __init__(self, dim: int, hidden: int, bias: bool = True, dropout: float = 0.0,
                 approximate: str = "tanh") -> None:
        super().__init__()
        self.fc = Linear(dim, hidden, bias=bias)
        self.proj = Linear(hidden, dim, bias=bias)
        self.proj.is_residual_projection = True  # scaled init, see models/gpt.py
        self.dropout = nn.Dropout(dropout)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate=self.approximate)))


class SwiGLU(nn.Module):
    """Gated FFN: a SiLU-gated product of two projections, then a down projection."""

    def __init__(self, dim: int, hidden: int, bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate = Linear(dim, hidden, bias=bias)
        self.up = Linear(dim, hidden, bias=bias)
        self.proj = Linear(hidden, dim, bias=bias)
        self.proj.is_residual_projection = True
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.silu(self.gate(x)) * self.up(x)))


def swiglu_hidden(dim: int, multiple_of: int = 256) -> int:
    """Llama's hidden size: 2/3 of 4*dim (about a GELU MLP's parameter count), rounded up to ``multiple_of``."""
    hidden = int(2 * 4 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)
