"""The Transformer block: attention and a feed-forward network, each in a residual branch.

Pre-norm (GPT-2 onwards):   x = x + Attn(Norm1(x));  x = x + FFN(Norm2(x))
Post-norm (original, BERT): x = Norm1(x + Attn(x));  x = Norm2(x + FFN(x))

A decoder block of an encoder-decoder model (Vaswani et al., 2017; T5) has a
cross-attention sub-layer between the two, over the encoder's output m:
    pre-norm:  x = x + Cross(NormCross(x), m)      post-norm:  x = NormCross(x + Cross(x, m))

The block receives its sub-modules ready-made, so GPT, BERT and T5 differ in
what they pass in, not in copies of this code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fromzero.nn.kv_cache import KVCache


class Block(nn.Module):
    """Residual block over an attention module and an FFN module, pre- or post-norm.

    With ``cross_attn`` (and its ``norm_cross``) it is a decoder block with a
    cross-attention sub-layer after self-attention.
    """

    def __init__(self, attn: nn.Module, mlp: nn.Module, norm1: nn.Module, norm2: nn.Module,
                 pre_norm: bool = True, *, cross_attn: nn.Module | None = None,
                 norm_cross: nn.Module | None = None) -> None:
        super().__init__()
        if (cross_attn is None) != (norm_cross is None):
            raise ValueError("cross_attn and norm_cross go together: pass both or neither")
        self.norm1, self.attn = norm1, attn
        self.norm_cross, self.cross_attn = norm_cross, cross_attn  # registered in the order they run
        self.norm2, self.mlp = norm2, mlp
        self.pre_norm = pre_norm

    def forward(self, x: torch.Tensor, *, positions: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, cache: KVCache | None = None, layer: int = 0,
                position_bias: torch.Tensor | None = None, memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, cross_cache: Any = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C).

        positions, mask, cache, layer and position_bias go to self-attention
        (position_bias only when given, so attention modules without it still
        work). memory (B, S, C_mem), memory_mask (bool, True where a key may be
        attended) and cross_cache (the memory's projected keys/values) go to
        cross-attention.
        """
        kw: dict[str, Any] = {"positions": positions, "mask": mask, "cache": cache, "layer": layer}
        if position_bias is not None:
            kw["position_bias"] = position_bias
        if self.pre_norm:
            x = x + self.attn(self.norm1(x), **kw)
            if self.cross_attn is not None:
                x = x + self.cross_attn(self.norm_cross(x), memory, mask=memory_mask, cache=cross_cache,
                                        layer=layer)
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attn(x, **kw))
        if self.cross_attn is not None:
            x = self.norm_cross(x + self.cross_attn(x, memory, mask=memory_mask, cache=cross_cache, layer=layer))
        return self.norm2(x + self.mlp(x))
