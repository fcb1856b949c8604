"""Normalisation layers: LayerNorm (optional bias) and RMSNorm.

LayerNorm:  y = (x - mean(x)) / sqrt(var(x) + eps) * g + b      (Ba et al., 2016)
RMSNorm:    y = x / sqrt(mean(x^2) + eps) * g                   (Zhang & Sennrich, 2019)

Under bf16 (autocast or bf16 activations) both keep their statistics in fp32: on an fp32 residual
stream autocast leaves layer_norm in fp32, ATen's layer_norm accumulates bf16 input in fp32, and
RMSNorm upcasts. The output keeps the input's dtype. Handing autocast's bf16 to the next linear
instead would save nothing (that linear casts once) and, where two linears read the norm (SwiGLU's
gate and up), would sum their input gradients in bf16 instead of fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm over the last dimension, with an optional bias (GPT-2 has one; many LLMs don't)."""

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """Root-mean-square norm: rescales without centring; computed in fp32 for stability."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


def make_norm(kind: str, dim: int, eps: float, bias: bool = True) -> nn.Module:
    """Build the norm named in a config ('layernorm' or 'rmsnorm')."""
    if kind == "layernorm":
        return LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps=eps)
    raise ValueError(f"unknown norm {kind!r}")
