"""Cross-attention: queries from the decoder, keys and values from the encoder's output (the memory).

    CrossAttention(x, m) = softmax(Q K^T * scale + B + M) V,   Q = x W_q,  [K, V] = m [W_k; W_v]

(Vaswani et al., 2017, https://arxiv.org/abs/1706.03762, section 3.2.3.) M hides
the memory's padding (0 where a key is a real token, -inf where it is padding).
The memory does not change while a decoder generates, so its projected keys
and values are computed once and kept in a :class:`CrossKVCache`.

Parameter names: ``q`` (W_q), ``kv`` (rows [W_k; W_v], one fused matmul) and
``proj`` (the output projection, Hugging Face's ``o`` / ``out_proj``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.nn.attention import attention_bias
from fromzero.nn.linear import Linear


class CrossKVCache:
    """Projected memory keys/values per decoder layer, each (B, H, S, D), filled on first use.

    One cache belongs to one encoded batch: reusing it with another memory
    would attend to the old one.
    """

    def __init__(self, n_layer: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    def get(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        k, v = self.keys[layer], self.values[layer]
        return None if k is None or v is None else (k, v)

    def set(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self.keys[layer], self.values[layer] = k, v

    def reorder(self, index: torch.Tensor) -> None:
        """Row i becomes old row ``index[i]`` (beam search; filled layers only)."""
        self.keys = [None if k is None else k.index_select(0, index) for k in self.keys]
        self.values = [None if v is None else v.index_select(0, index) for v in self.values]


class CrossAttention(nn.Module):
    """Multi-head attention from queries x (B, T, C) to a memory (B, S, C_mem).

    ``head_dim`` defaults to dim // n_head, ``memory_dim`` to dim, ``scale`` to
    1 / sqrt(head_dim) (T5 uses 1.0). The inner width n_head * head_dim may
    differ from dim.
    """

    def __init__(self, dim: int, n_head: int, *, head_dim: int | None = None, memory_dim: int | None = None,
                 bias: bool = True, dropout: float = 0.0, scale: float | None = None) -> None:
        super().__init__()
        if head_dim is None and dim % n_head:
            raise ValueError(f"dim {dim} is not divisible by n_head {n_head}; pass head_dim")
        self.n_head, self.head_dim = n_head, head_dim or dim // n_head
        self.scale = scale
        inner = n_head * self.head_dim
        self.q = Linear(dim, inner, bias=bias)
        self.kv = Linear(memory_dim or dim, 2 * inner, bias=bias)
        self.proj = Linear(inner, dim, bias=bias)
        self.proj.is_residual_projection = True
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)
        self.register_buffer("head_index", None)  # set by nn.shrink.keep_heads, as SelfAttention's

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project the memory (B, S, C_mem) into keys and values, each (B, H, S, D)."""
        B, S, _ = memory.shape
        k, v = self.kv(memory).view(B, S, 2, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None, *, mask: torch.Tensor | None = None,
                position_bias: torch.Tensor | None = None, cache: CrossKVCache | None = None,
                layer: int = 0) -> torch.Tensor:
        """x (B, T, C), memory (B, S, C_mem) -> (B, T, C).

        mask: bool (B|1, 1, T|1, S), True where a query may attend (the memory's
        real tokens). position_bias: float (B|1, H, T, S) added to the logits.
        cache: the memory's keys/values for ``layer``, projected on the first
        call and reused afterwards (``memory`` may then be None).
        """
        B, T, _ = x.shape
        kv = cache.get(layer) if cache is not None else None
        if kv is None:
            if memory is None:
                raise ValueError("CrossAttention needs the memory (or a cache already holding its keys/values)")
            kv = self.memory_kv(memory)
            if cache is not None:
                cache.set(layer, *kv)
        k, v = kv
        if position_bias is not None and self.head_index is not None and position_bias.shape[1] != self.n_head:
            position_bias = position_bias.index_select(1, self.head_index)  # (B|1, H_kept, T, S)
        q = self.q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_bias(mask, position_bias, q.dtype),
                                           dropout_p=self.dropout if self.training else 0.0, scale=self.scale)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)
        return self.resid_dropout(self.proj(y))
