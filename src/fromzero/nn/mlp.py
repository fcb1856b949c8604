"""Position-wise feed-forward networks.

MLP (GPT-2/BERT):  FFN(x) = W2 GELU(W1 x + b1) + b2
SwiGLU (Shazeer, 2020; Llama):  FFN(x) = W2 (SiLU(W_gate x) * (W_up x))

GELU (Hendrycks & Gimpel, 2016, https://arxiv.org/abs/1606.08415) is exact, x Phi(x), or GPT-2's tanh
approximation. Since 0.5 (1 + tanh(u)) = sigmoid(2u), the approximation is also
    GELU_tanh(x) = x sigmoid(z),  z = 2 sqrt(2/pi) (x + 0.044715 x^3)
    d/dx = s + x s (1 - s) 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2),  s = sigmoid(z)
which ``gelu_tanh`` uses when training in fp32 on a CPU, where ATen's vectorised tanh is several times
slower than its exp: in a gpt-char-6x384 training step (batch 8, 2 cores) it cut the time spent outside
matmuls and attention from ~126 to ~99 ms (with the exact GELU: ~89). Same function, up to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.nn.linear import Linear

_Z1 = 2 * math.sqrt(2 / math.pi)  # z = x (_Z1 + _Z3 x^2)
_Z3 = _Z1 * 0.044715


def _sigmoid_of_z(x: torch.Tensor) -> torch.Tensor:
    """sigmoid(x (_Z1 + _Z3 x^2)) in one new tensor, updated in place: every extra pass or buffer costs."""
    return torch.addcmul(x.new_tensor(_Z1), x, x, value=_Z3).mul_(x).sigmoid_()


class _SigmoidTanhGELU(torch.autograd.Function):
    """GELU_tanh through sigmoid, saving only x for backward (as ATen's GELU does)."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _sigmoid_of_z(x).mul_(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = _sigmoid_of_z(x)
        r = torch.addcmul(x.new_tensor(_Z1), x, x, value=3 * _Z3).mul_(x)  # x dz/dx
        r = torch.ops.aten.sigmoid_backward.grad_input(r, s, grad_input=r)  # x dz/dx s (1 - s)
        return r.add_(s).mul_(grad)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's tanh-approximated GELU; equal to ``F.gelu(x, approximate="tanh")`` up to float rounding.

    The sigmoid form (module docstring) runs only where it is faster: fp32 on CPU while autograd
    records. Inference, other dtypes and other devices call ATen's kernel unchanged.
    """
    if x.requires_grad and torch.is_grad_enabled() and x.dtype == torch.float32 and x.device.type == "cpu":
        return _SigmoidTanhGELU.apply(x)
    return F.gelu(x, approximate="tanh")


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
        h = self.fc(x)  # (B, T, hidden)
        h = gelu_tanh(h) if self.approximate == "tanh" else F.gelu(h, approximate=self.approximate)
        return self.dropout(self.proj(h))


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
