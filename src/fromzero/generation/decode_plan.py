"""GPT's decode step as direct kernel calls, resolved once per generation: the per-token overhead cut.

A decode step of the 6x384 GPT at batch 1 is 24 matrix-vector products that
stream 42 MB of weights from memory, plus ~150 small ops (norms, views, cache
writes, attention, GELU, residual adds) and ~80 module calls. Measured in
context the small work costs far more than in a micro-benchmark, since the
weights evict the interpreter's own data from the caches: with
``GPT.decode_step`` it was a third of the step (docs/16-speed.md,
"Generation"). :class:`DecodePlan` computes the same step, but looks up each
layer's parameters once and calls the functional kernels directly:

- ``LayerNorm`` -> ``F.layer_norm``; ``Linear`` -> :class:`PlanLinear` (one
  row on several CPU threads: ``nn.Linear``'s split batched-matmul path with
  its weight views made once; several rows: oneDNN on a prepacked weight);
  ``MLP`` / ``SwiGLU`` -> their two or three linears and the activation;
  embeddings -> ``F.embedding``;
- attention is :func:`fromzero.nn.attention.decode_attention`.

A module of any other type (a LoRA or quantized linear, a norm the plan does
not know) is called as a module: the same math, only its call overhead
stays. Inference only: no dropout. Tested token for token against the
uncached forward (tests/generation/test_cached_decoding.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.models import GPT
from fromzero.nn import MLP, LayerNorm, LearnedPositions, Linear, SwiGLU
from fromzero.nn.attention import decode_attention
from fromzero.nn.kv_cache import KVCache

Fn = Callable[[torch.Tensor], torch.Tensor]


def _can_pack() -> bool:
    """oneDNN's prepacked linear (the kernel TorchInductor's CPU weight prepacking calls) is in this build."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    return (torch.backends.mkldnn.is_available() and hasattr(mkldnn, "_reorder_linear_weight")
            and hasattr(mkldnn, "_linear_pointwise"))


class PlanLinear:
    """A plain linear layer's parameters bound once, run by the fastest CPU kernel for the rows it gets.

    One row on k >= 2 threads: ``nn.Linear``'s split path (the output features in one chunk per thread,
    one batched matmul over a strided view of the weight, see ``fromzero.nn.linear``), its views made
    once. Several rows (fp32, CPU, ``pack``): oneDNN's linear on a weight reordered once into its
    blocked layout, made on the first such call; MKL's matmul re-packs the weight on every call, which
    for 8 rows costs ~20% of the step's matmul time. That copy doubles the layer's weight memory while
    the plan lives. Anything else: ``F.linear``. Same results up to float rounding.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, chunks: int, pack: bool) -> None:
        out, inp = weight.shape
        self.weight, self.bias, self.chunks, self.inp, self.out = weight, bias, chunks, inp, out
        self.split = weight.view(chunks, out // chunks, inp).transpose(1, 2) if chunks > 1 else None  # (k, in, out/k)
        self.split_bias = None if bias is None or chunks < 2 else bias.view(chunks, 1, out // chunks)
        self.pack = pack and weight.device.type == "cpu" and weight.dtype == torch.float32 and _can_pack()
        self.packed: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            if self.split is None:
                return F.linear(x, self.weight, self.bias)
            row = x.reshape(1, 1, self.inp).expand(self.chunks, 1, self.inp)
            y = torch.bmm(row, self.split) if self.split_bias is None else torch.baddbmm(self.split_bias, row,
                                                                                         self.split)
            return y.view(1, self.out)
        if not self.pack:
            return F.linear(x, self.weight, self.bias)
        if self.packed is None:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, x.shape[0])
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def linear_fn(module: nn.Module, pack: bool = True) -> Fn:
    """A plain linear layer as a :class:`PlanLinear`; any other module (LoRA, quantized) as itself."""
    if type(module) not in (Linear, nn.Linear):
        return module
    threads = torch.get_num_threads()
    split = type(module) is Linear and threads >= 2 and module.weight.device.type == "cpu" and \
        module.out_features % threads == 0
    return PlanLinear(module.weight, module.bias, threads if split else 1, pack)


def norm_fn(module: nn.Module) -> Fn:
    """A LayerNorm as ``F.layer_norm`` with its parameters bound; any other norm as itself."""
    if type(module) is LayerNorm:
        return partial(F.layer_norm, normalized_shape=module.weight.shape, weight=module.weight, bias=module.bias,
                       eps=module.eps)
    if type(module) is nn.LayerNorm:
        return partial(F.layer_norm, normalized_shape=module.normalized_shape, weight=module.weight,
                       bias=module.bias, eps=module.eps)
    return module


def mlp_fn(module: nn.Module, pack: bool = True) -> Fn:
    """An MLP (GELU) or SwiGLU as its linears and activation, without dropout; any other FFN as itself."""
    if type(module) is MLP:
        fc, proj, approximate = linear_fn(module.fc, pack), linear_fn(module.proj, pack), module.approximate
        return lambda h: proj(F.gelu(fc(h), approximate=approximate))
    if type(module) is SwiGLU:
        gate, up, proj = (linear_fn(m, pack) for m in (module.gate, module.up, module.proj))
        return lambda h: proj(F.silu(gate(h)) * up(h))
    return module


def embedding_fn(module: nn.Module) -> Fn:
    """An embedding table lookup as ``F.embedding``; any other module as itself."""
    if type(module) is LearnedPositions or (type(module) is nn.Embedding and module.max_norm is None):
        return partial(F.embedding, weight=module.weight)
    return module


class DecodePlan:
    """``GPT.decode_step`` for one generation: the same logits, fewer ops per token.

    Build it after the weights are final (it binds the current parameter tensors) and with the torch
    thread count the decoding will use. ``pack``: prepack weights for multi-row steps (off when compiling:
    the plan must then be free of side effects).
    """

    def __init__(self, model: GPT, pack: bool = True) -> None:
        if not all(block.pre_norm for block in model.blocks):
            raise ValueError("DecodePlan handles pre-norm GPT blocks only")
        self.tok_emb = embedding_fn(model.tok_emb)
        self.pos_emb = None if model.pos_emb is None else embedding_fn(model.pos_emb)
        self.layers = [(norm_fn(b.norm1), b.attn, linear_fn(b.attn.qkv, pack), linear_fn(b.attn.proj, pack),
                        norm_fn(b.norm2), mlp_fn(b.mlp, pack)) for b in model.blocks]
        self.norm_f, self.lm_head = norm_fn(model.norm_f), linear_fn(model.lm_head, pack)

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache, span: int,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
        """tokens, positions (n,) -> logits (n, V); the arguments of :meth:`GPT.decode_step`."""
        x = self.tok_emb(tokens)  # (n, C)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        for i, (norm1, attn, qkv, proj, norm2, mlp) in enumerate(self.layers):
            x = x + proj(decode_attention(attn, qkv(norm1(x)), positions, cache, i, span, bias))
            x = x + mlp(norm2(x))
        return self.lm_head(self.norm_f(x))

