"""Structured removal: keep some attention heads or feed-forward hidden units and drop the rest, in place.

Removing head h of multi-head attention deletes its query, key and value rows
(``qkv`` holds rows [W_q; W_k; W_v], head h owning rows h*D..(h+1)*D-1 of each
block) and the matching D columns of the output projection ``proj``:

    y = sum_h softmax(Q_h K_h^T * s + B_h) V_h W_proj[:, h]^T + b_proj

so dropping a head whose term is zero leaves y unchanged. Removing hidden
unit j of an FFN deletes row j of each input layer (``fc``, or ``gate`` and
``up``) and column j of ``proj``. The tensors really shrink: the model gets
smaller and faster (Michel et al. 2019, "Are Sixteen Heads Really Better than
One?", https://arxiv.org/abs/1905.10650, prune heads this way).

The attention module remembers which of the original heads it kept in a
``head_index`` buffer (saved with the weights), so a position bias computed
for all heads (T5's, shared by every layer) is narrowed to the kept ones.
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.nn.linear import Linear


def _narrowed(layer: nn.Linear, index: torch.Tensor, dim: int) -> Linear:
    """A Linear holding ``layer``'s output rows (dim 0) or input columns (dim 1) at ``index``."""
    weight = layer.weight.detach().index_select(dim, index.to(layer.weight.device))
    out_features, in_features = weight.shape
    bias = layer.bias is not None
    new = Linear(in_features, out_features, bias=bias, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias:
            b = layer.bias.detach()
            new.bias.copy_(b.index_select(0, index.to(b.device)) if dim == 0 else b)
    for attr in ("is_residual_projection",):  # init marks some layers; keep them
        if hasattr(layer, attr):
            setattr(new, attr, getattr(layer, attr))
    return new


def _check_index(index: torch.Tensor, n: int, what: str) -> torch.Tensor:
    index = torch.as_tensor(index, dtype=torch.long).flatten()
    if index.numel() == 0 or index.numel() > n:
        raise ValueError(f"keep between 1 and {n} {what}, got {index.numel()}")
    if (index < 0).any() or (index >= n).any() or index.unique().numel() != index.numel():
        raise ValueError(f"{what} index must be distinct values in [0, {n}), got {index.tolist()}")
    return index.sort().values


def _head_rows(index: torch.Tensor, head_dim: int, offset: int = 0) -> torch.Tensor:
    """Row (or column) ids of the heads at ``index`` in a block of heads starting at ``offset``."""
    return (offset + index[:, None] * head_dim + torch.arange(head_dim)).flatten()  # (H_kept * D,)


def keep_heads(attn: nn.Module, index: torch.Tensor) -> None:
    """Keep only the heads at ``index`` (sorted, distinct) of a SelfAttention or CrossAttention, in place.

    Only plain multi-head attention (``n_kv_head == n_head``): under grouped-query attention a key/value
    head serves several query heads. ``head_index`` composes, so shrinking twice keeps the right heads.
    """
    n, hd = attn.n_head, attn.head_dim
    index = _check_index(index, n, "heads")
    cols = _head_rows(index, hd)
    if hasattr(attn, "qkv"):
        if attn.n_kv_head != n:
            raise ValueError(f"keep_heads needs n_kv_head == n_head, got {attn.n_kv_head} and {n}")
        rows = torch.cat([_head_rows(index, hd, part * n * hd) for part in range(3)])  # q, k, v blocks
        attn.qkv = _narrowed(attn.qkv, rows, 0)
        attn.n_kv_head = index.numel()
    else:  # CrossAttention: q, and kv with rows [W_k; W_v]
        attn.q = _narrowed(attn.q, cols, 0)
        attn.kv = _narrowed(attn.kv, torch.cat([cols, _head_rows(index, hd, n * hd)]), 0)
    attn.proj = _narrowed(attn.proj, cols, 1)
    attn.n_head = index.numel()
    previous = attn.head_index if attn.head_index is not None else torch.arange(n)
    attn.head_index = previous.to(index.device)[index].to(attn.proj.weight.device)


def ffn_inputs(mlp: nn.Module) -> list[str]:
    """Names of an FFN's input layers, whose rows are its hidden units: ``fc``, or ``gate`` and ``up``."""
    return [name for name in ("fc", "gate", "up") if isinstance(getattr(mlp, name, None), nn.Linear)]


def keep_neurons(mlp: nn.Module, index: torch.Tensor) -> None:
    """Keep only the hidden units at ``index`` (sorted, distinct) of an FFN (MLP, SwiGLU, T5's), in place."""
    inputs = ffn_inputs(mlp)
    if not inputs or not isinstance(getattr(mlp, "proj", None), nn.Linear):
        raise ValueError(f"{type(mlp).__name__} is not a feed-forward network (no fc/gate/up and proj)")
    index = _check_index(index, mlp.proj.in_features, "hidden units")
    for name in inputs:
        setattr(mlp, name, _narrowed(getattr(mlp, name), index, 0))
    mlp.proj = _narrowed(mlp.proj, index, 1)
