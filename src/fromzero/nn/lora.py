"""LoRA: low-rank adapters swapped into a built model, keeping the base parameter names.

A frozen linear layer ``y = x W^T + b`` (W: out x in) learns a low-rank update

    y = x W^T + b + (alpha / r) * Dropout(x) A^T B^T       A: r x in, B: out x r, r << min(in, out)

A starts uniform (Kaiming, as in Microsoft's loralib and PEFT) and B at zero,
so at initialisation the adapted model computes exactly what the base model
did. Merging folds the update into the weight, ``W' = W + (alpha / r) B A``,
which gives the same function with no extra cost at inference.

:class:`LoRALinear` *is* a :class:`fromzero.nn.Linear` whose ``weight`` and
``bias`` are the very Parameter objects of the layer it replaces, plus
``lora_a`` and ``lora_b``. So ``blocks.0.attn.qkv.weight`` keeps its name (base
checkpoints and Hugging Face key maps still apply), tied weights stay tied,
and the adapter adds exactly two keys per layer, ``<layer>.lora_a`` and
``<layer>.lora_b``. A fused projection such as ``attn.qkv`` = [q; k; v] gets
one adapter over its whole output: one A shared by q, k and v and one B with
a row block for each, so the joint update has rank <= r (three separate
rank-r adapters would allow rank up to 3r at a similar parameter count).

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models",
https://arxiv.org/abs/2106.09685.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.nn.linear import Linear

LORA_PARAMS = ("lora_a", "lora_b")
# Attributes LoRALinear adds on top of a plain linear layer (not copied back by merging).
_LORA_ATTRS = {"rank", "alpha", "scaling", "base_cls", "lora_dropout", *LORA_PARAMS}
_MODULE_ATTRS = {"training", "in_features", "out_features"}


def _copy_plain_attrs(src: nn.Module, dst: nn.Module, skip: set[str]) -> None:
    """Carry over user attributes (e.g. ``is_residual_projection``) that are not parameters or submodules."""
    for key, value in vars(src).items():
        if not key.startswith("_") and key not in skip and key not in _MODULE_ATTRS:
            setattr(dst, key, value)


class LoRALinear(Linear):
    """A linear layer plus a low-rank update: ``x W^T + b + (alpha/r) Dropout(x) A^T B^T``.

    Build it from an existing layer with :meth:`from_linear` (shares that layer's
    ``weight``/``bias``) or directly like ``nn.Linear`` with a ``rank``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float = 16.0, dropout: float = 0.0,
                 bias: bool = True, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.base_cls: type[nn.Linear] = Linear
        self._init_adapter(rank, alpha, dropout)

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, alpha: float = 16.0, dropout: float = 0.0) -> LoRALinear:
        """Wrap ``linear``: the result holds the same weight and bias Parameters (no copy) and a fresh adapter."""
        lora = cls.__new__(cls)
        nn.Module.__init__(lora)
        lora.in_features, lora.out_features = linear.in_features, linear.out_features
        lora.register_parameter("weight", linear.weight)
        lora.register_parameter("bias", linear.bias)
        _copy_plain_attrs(linear, lora, skip=set())
        lora.base_cls = type(linear)
        lora._init_adapter(rank, alpha, dropout)
        return lora.train(linear.training)

    def _init_adapter(self, rank: int, alpha: float, dropout: float) -> None:
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.rank, self.alpha, self.scaling = rank, float(alpha), float(alpha) / rank
        w = self.weight
        self.lora_a = nn.Parameter(torch.empty(rank, self.in_features, device=w.device, dtype=w.dtype))
        self.lora_b = nn.Parameter(torch.zeros(self.out_features, rank, device=w.device, dtype=w.dtype))
        self.lora_dropout = nn.Dropout(dropout)
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # nn.Linear's default init, as loralib does

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out)."""
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_a), self.lora_b)  # (..., r) -> (..., out)
        return super().forward(x) + self.scaling * update

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """W + (alpha / r) B A, the weight of the equivalent plain layer (out, in)."""
        return self.weight + self.scaling * (self.lora_b @ self.lora_a).to(self.weight.dtype)

    def to_linear(self) -> nn.Linear:
        """A plain layer of the original class with the update folded in; the bias Parameter is shared.

        The merged weight is a new Parameter, so a weight tied elsewhere (GPT's
        ``lm_head`` and ``tok_emb``) is untied rather than silently changed there.
        """
        cls = self.base_cls
        plain = cls.__new__(cls)
        nn.Module.__init__(plain)
        plain.in_features, plain.out_features = self.in_features, self.out_features
        plain.register_parameter("weight", nn.Parameter(self.merged_weight(), requires_grad=self.weight.requires_grad))
        plain.register_parameter("bias", self.bias)
        _copy_plain_attrs(self, plain, skip=_LORA_ATTRS)
        return plain.train(self.training)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha:g}"
