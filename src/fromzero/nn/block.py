"""The Transformer block: attention and a feed-forward network, each in a residual branch.

Pre-norm (GPT-2 onwards):   x = x + Attn(Norm1(x));  x = x + FFN(Norm2(x))
Post-norm (original, BERT): x = Norm1(x + Attn(x));  x = Norm2(x + FFN(x))

The block receives its sub-modules ready-made, so GPT, BERT and T5 differ in
what they pass in, not in copies of this code.
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.nn.kv_cache import KVCache


class Block(nn.Module):
    """Residual block over an attention module and an FFN module, pre- or post-norm."""

    def __init__(self, attn: nn.Module, mlp: nn.Module, norm1: nn.Module, norm2: nn.Module,
                 pre_norm: bool = True) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = norm1, attn, norm2, mlp
        self.pre_norm = pre_norm

    def forward(self, x: torch.Tensor, *, positions: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, cache: KVCache | None = None,
                layer: int = 0) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C); keyword arguments go to the attention module."""
        if self.pre_norm:
            x = x + self.attn(self.norm1(x), positions=positions, mask=mask, cache=cache, layer=layer)
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attn(x, positions=positions, mask=mask, cache=cache, layer=layer))
        return self.norm2(x + self.mlp(x))
