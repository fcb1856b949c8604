"""Speed options of KV-cache decoding, all off by default: ``torch.compile`` of the decode step.

``compile``: the decode step (:class:`~fromzero.generation.decode_plan.DecodePlan`)
goes through ``torch.compile`` (TorchInductor: fused C++ kernels for the
norms, activations and residual adds; the matmuls stay library calls),
with dynamic shapes so the number of rows and the attended span change
without recompiling. The compiled step is kept per model, thread count and
set of parameter tensors, so only the first generation of a process pays
the compile (tens of seconds on a small CPU); whether it pays after that is
measured in ``benchmarks/generate_throughput.py --compile`` and
docs/16-speed.md. Prefill stays eager.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fromzero.generation.decode_plan import DecodePlan
from fromzero.models import GPT


@dataclass(frozen=True)
class DecodeOptions:
    """How the decode step runs; the defaults are the eager plan, the fastest choice without a warm-up."""

    compile: bool = False  # torch.compile the decode step (pays the compile once per process and model)


_COMPILED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, Callable[..., torch.Tensor]]] = (
    weakref.WeakKeyDictionary())


def decode_step_fn(model: nn.Module, options: DecodeOptions | None = None) -> Callable[..., torch.Tensor]:
    """The function a :class:`BatchDecoder` calls for a decode step of ``model`` under ``options``.

    A GPT gets a :class:`DecodePlan` (compiled if asked); any other model its own ``decode_step``.
    """
    options = options or DecodeOptions()
    if not options.compile:
        return DecodePlan(model) if isinstance(model, GPT) else model.decode_step
    # The plan binds parameter tensors: reuse a compiled one only while they are the same tensors.
    key = (torch.get_num_threads(), tuple(id(p) for p in model.parameters()))
    per_model = _COMPILED.setdefault(model, {})
    if key not in per_model:
        per_model.clear()  # weights were replaced: the old compiled step points at stale tensors
        step = DecodePlan(model, pack=False).__call__ if isinstance(model, GPT) else model.decode_step
        per_model[key] = CompiledStep(torch.compile(step, dynamic=True))
    return per_model[key]


class CompiledStep:
    """A compiled decode step. ``always_bias``: the decoder passes a mask even when every row sees every key
    (an all-zero one), so one graph serves all batches instead of a second compile for ``bias=None``."""

    always_bias = True

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.fn = fn

    def __call__(self, *args: object) -> torch.Tensor:
        return self.fn(*args)
