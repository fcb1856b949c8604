"""Multi-head self-attention on ``torch.nn.functional.scaled_dot_product_attention``.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + M) V        (Vaswani et al., 2017)

with M = 0 where a query may attend to a key and -inf elsewhere (causal
and/or padding). Grouped-query attention (Ainslie et al., 2023) shares each
key/value head among ``n_head / n_kv_head`` query heads; n_kv_head == n_head
is ordinary multi-head attention, n_kv_head == 1 is multi-query attention.

T5 (Raffel et al., 2019, https://arxiv.org/abs/1910.10683) differs in three
ways, all options here: no 1/sqrt(d) scaling (``scale=1.0``), an additive
relative position bias B (``position_bias``, see ``nn.positions``), and an
inner width n_head * head_dim that need not equal the model width:
    Attention(Q, K, V) = softmax(Q K^T * scale + B + M) V
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.nn.kv_cache import KVCache
from fromzero.nn.linear import Linear
from fromzero.nn.positions import RotaryEmbedding


def causal_mask(q_len: int, kv_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(q_len, kv_len) bool, True where query i (the last q_len of kv_len positions) sees key j."""
    offset = kv_len - q_len
    q_pos = torch.arange(q_len, device=device).unsqueeze(1) + offset
    return torch.arange(kv_len, device=device).unsqueeze(0) <= q_pos


def build_attention_mask(key_padding: torch.Tensor | None, q_len: int, kv_len: int, causal: bool,
                   device: torch.device | str = "cpu") -> torch.Tensor | None:
    """Combine causality and key padding into a (B or 1, 1, q_len, kv_len) bool mask.

    ``key_padding`` (B, kv_len) is True for real tokens. Every query also sees
    its own position, so no row is fully masked (a fully masked row would make
    softmax produce NaN at padded queries, whose outputs are ignored anyway).
    Returns None when no mask is needed at all (no padding and either
    non-causal or a single query).
    """
    if key_padding is None and (not causal or q_len == 1):
        return None
    if causal:
        mask = causal_mask(q_len, kv_len, device)
    else:
        mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
    mask = mask.view(1, 1, q_len, kv_len)
    if key_padding is not None:
        mask = mask & key_padding[:, None, None, :].bool()
        own = torch.zeros(q_len, kv_len, dtype=torch.bool, device=device)
        own[torch.arange(q_len), torch.arange(kv_len - q_len, kv_len)] = True
        mask = mask | own.view(1, 1, q_len, kv_len)
    return mask


def attention_bias(mask: torch.Tensor | None, position_bias: torch.Tensor | None,
                   dtype: torch.dtype) -> torch.Tensor | None:
    """What SDPA's ``attn_mask`` gets: the bool mask, or ``position_bias + where(mask, 0, -inf)``.

    mask: bool (B|1, 1, T, S), True where a query may attend; position_bias:
    float (B|1, H, T, S) added to the logits. Returns None when both are None.
    """
    if position_bias is None:
        return mask
    position_bias = position_bias.to(dtype)
    if mask is None:
        return position_bias
    return torch.where(mask, position_bias, float("-inf"))  # (B|1, H, T, S)


class SelfAttention(nn.Module):
    """Multi-head (optionally grouped-query) self-attention with an optional KV cache.

    One fused projection ``qkv`` produces queries, keys and values (one matmul
    instead of three; its rows are [W_q; W_k; W_v]); ``proj`` maps the
    concatenated heads (n_head * head_dim wide) back to the model width.
    ``head_dim`` defaults to dim // n_head; ``scale`` to 1 / sqrt(head_dim).
    """

    def __init__(self, dim: int, n_head: int, n_kv_head: int | None = None, *, causal: bool = True,
                 bias: bool = True, dropout: float = 0.0, rope: RotaryEmbedding | None = None,
                 head_dim: int | None = None, scale: float | None = None) -> None:
        super().__init__()
        n_kv_head = n_kv_head or n_head
        if (head_dim is None and dim % n_head) or n_head % n_kv_head:
            raise ValueError(f"dim {dim}, n_head {n_head}, n_kv_head {n_kv_head} do not divide")
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim or dim // n_head
        self.causal = causal
        self.scale = scale
        self.qkv = Linear(dim, (n_head + 2 * n_kv_head) * self.head_dim, bias=bias)
        self.proj = Linear(n_head * self.head_dim, dim, bias=bias)
        self.proj.is_residual_projection = True  # scaled init, see models/gpt.py
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)
        self.rope = rope
        # Set by nn.shrink.keep_heads: which of the original heads remain, to pick their rows of a
        # position_bias computed for all of them (T5 shares one bias across layers).
        self.register_buffer("head_index", None)

    def forward(self, x: torch.Tensor, *, positions: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, cache: KVCache | None = None,
                layer: int = 0, position_bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C).

        positions (B, T) or (T,): absolute positions, used by RoPE.
        mask: bool (B|1, 1, T, S) from :func:`build_attention_mask`, or None to use
        plain causal (or no) masking. cache: keys/values of earlier positions.
        position_bias: float (B|1, H, T, S) added to the logits (T5's relative bias).
        """
        B, T, _ = x.shape
        hd = self.head_dim
        if position_bias is not None and self.head_index is not None and position_bias.shape[1] != self.n_head:
            position_bias = position_bias.index_select(1, self.head_index)  # (B|1, H_kept, T, S)
        q, k, v = self.qkv(x).split([self.n_head * hd, self.n_kv_head * hd, self.n_kv_head * hd], dim=-1)
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_kv_head, hd).transpose(1, 2)  # (B, Hkv, T, D)
        v = v.view(B, T, self.n_kv_head, hd).transpose(1, 2)
        if self.rope is not None:
            if positions is None:
                positions = torch.arange(T, device=x.device) + (cache.length if cache else 0)
            q, k = self.rope(q, k, positions)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, Hkv, S, D), S = cached + T
        if self.n_kv_head != self.n_head:
            groups = self.n_head // self.n_kv_head
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        # is_causal only for the square no-cache case: SDPA's causal mask is top-left aligned.
        is_causal = mask is None and position_bias is None and self.causal and T > 1 and k.shape[2] == T
        if mask is None and self.causal and T > 1 and not is_causal:
            mask = causal_mask(T, k.shape[2], x.device).view(1, 1, T, -1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_bias(mask, position_bias, q.dtype),
                                           is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0,
                                           scale=self.scale)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * hd)
        return self.resid_dropout(self.proj(y))

    def decode(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache, layer: int, span: int,
               bias: torch.Tensor | None = None) -> torch.Tensor:
        """One new token per row in the cache's slot layout (inference only: no dropout): x (n, C) -> (n, C).

        Same math as :meth:`forward` with a cache; see :func:`decode_attention` for the arguments.
        """
        return self.proj(decode_attention(self, self.qkv(x), positions, cache, layer, span, bias))


def decode_attention(attn: SelfAttention, qkv: torch.Tensor, positions: torch.Tensor, cache: KVCache, layer: int,
                     span: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The attention of one new token per row, from its projection ``qkv`` (n, (H + 2 H_kv) D) -> (n, H D).

    Rows [0, n) of the cache's slot layout: row r's key/value is written at ``positions[r]`` (also its
    absolute position, for RoPE) and its query attends to positions [0, span) of its row. ``bias``
    (n, 1, 1, span) is additive: 0 where row r may attend (j <= positions[r]), -inf elsewhere; None when
    every row sees all ``span`` keys. Fewer ops than :meth:`SelfAttention.forward`: 2-D activations, no
    mask building, grouped key/value heads read in place (no repeat). The output projection is the caller's.
    """
    n, hd, heads, kv_heads = qkv.shape[0], attn.head_dim, attn.n_head, attn.n_kv_head
    q, k, v = qkv.view(n, heads + 2 * kv_heads, 1, hd).split([heads, kv_heads, kv_heads], dim=1)  # (n, h, 1, D)
    if attn.rope is not None:
        q, k = attn.rope(q, k, positions.view(n, 1))
    same = bias is None and not torch.compiler.is_compiling()  # a compiled step scatters: no recompile per span
    keys, values = cache.write(layer, k[:, :, 0], v[:, :, 0], positions, span, same)  # (n, H_kv, span, D)
    y = F.scaled_dot_product_attention(q, keys, values, attn_mask=bias, scale=attn.scale,
                                       enable_gqa=kv_heads != heads)  # (n, H, 1, D)
    return y.reshape(n, heads * hd)

