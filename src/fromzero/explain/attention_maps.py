"""Attention weights per layer and head, materialised only when asked for.

The models run attention fused (``scaled_dot_product_attention`` never returns the weights). To see them,
a forward pre-hook on every :class:`fromzero.nn.SelfAttention` takes the module's own input x and the
keyword arguments it was called with (positions, mask, T5's position bias) and recomputes, from the
module's own projections,

    A = softmax(Q K^T * scale + B + M),   Q, K = the q / k rows of qkv(x) (RoPE applied where the module has it)

with scale = 1 / sqrt(head_dim) unless the module sets its own (T5: 1), B the position bias and M = 0 where a
query may attend and -inf elsewhere (causal and padding, as the fused path masks). A @ V, through the
module's output projection, is the module's real output (tests/explain checks it), so these are the
weights the fused path used. Nothing changes for a forward pass outside :func:`capture_attention`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
from torch import nn

from fromzero.nn.attention import SelfAttention, causal_mask


def attention_modules(model: nn.Module) -> list[tuple[str, SelfAttention]]:
    """Every self-attention module of ``model`` with its qualified name, in forward order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SelfAttention)]


def split_heads(module: SelfAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (B, T, C) -> q (B, H, T, D), k and v (B, H_kv, T, D) from the module's fused projection."""
    B, T, _ = x.shape
    hd, h, hkv = module.head_dim, module.n_head, module.n_kv_head
    q, k, v = module.qkv(x).split([h * hd, hkv * hd, hkv * hd], dim=-1)
    return (q.view(B, T, h, hd).transpose(1, 2), k.view(B, T, hkv, hd).transpose(1, 2),
            v.view(B, T, hkv, hd).transpose(1, 2))


def attention_weights(module: SelfAttention, x: torch.Tensor, *, positions: torch.Tensor | None = None,
                      mask: torch.Tensor | None = None, position_bias: torch.Tensor | None = None) -> torch.Tensor:
    """The (B, H, T, T) attention probabilities ``module`` applies to x (B, T, C) in a cache-free forward."""
    T = x.shape[1]
    q, k, _ = split_heads(module, x)
    if module.rope is not None:
        q, k = module.rope(q, k, positions if positions is not None else torch.arange(T, device=x.device))
    if module.n_kv_head != module.n_head:
        k = k.repeat_interleave(module.n_head // module.n_kv_head, dim=1)
    scale = module.scale if module.scale is not None else 1.0 / math.sqrt(module.head_dim)
    logits = (q.float() @ k.float().transpose(-2, -1)) * scale  # (B, H, T, T)
    if position_bias is not None:
        index = getattr(module, "head_index", None)
        if index is not None and position_bias.shape[1] != module.n_head:
            position_bias = position_bias.index_select(1, index)
        logits = logits + position_bias.float()
    if mask is None and module.causal and T > 1:
        mask = causal_mask(T, T, x.device).view(1, 1, T, T)
    if mask is not None:
        logits = logits.masked_fill(~mask.bool(), float("-inf"))
    return torch.softmax(logits, dim=-1)


def _capture(name: str, maps: dict[str, torch.Tensor], module: SelfAttention, args: tuple, kwargs: dict[str, Any]
             ) -> None:
    if kwargs.get("cache") is not None:  # decoding with a cache: not what an explanation runs
        return
    x = args[0] if args else kwargs["x"]
    with torch.no_grad():
        maps[name] = attention_weights(module, x.detach(), positions=kwargs.get("positions"),
                                       mask=kwargs.get("mask"), position_bias=kwargs.get("position_bias"))


@contextlib.contextmanager
def capture_attention(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, every forward pass fills the yielded dict: module name -> (B, H, T, T) weights."""
    maps: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_pre_hook(partial(_capture, name, maps), with_kwargs=True)
               for name, m in attention_modules(model)]
    try:
        yield maps
    finally:
        for h in handles:
            h.remove()
