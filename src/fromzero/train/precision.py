"""Device choice and mixed precision.

bf16 autocast runs matmuls (and attention) in bfloat16 while weights,
optimizer state, norms and the loss stay fp32; it needs no loss scaling
(bf16 has fp32's exponent range). It pays where bf16 is multiplied natively:
GPUs, CPUs with AMX or AVX512_BF16. An AVX2-only CPU emulates it (~100x
slower matmuls). "auto" uses it on GPUs that support bf16; on a CPU it
follows a timing probe of the model's own step when the caller passes one
(train/precision_probe.py: the answer depends on the model's shapes, not
only on the CPU), else stays fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from fromzero.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; explicit names are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device, probe: Callable[[], str] | None = None) -> str:
    """'fp32' or 'bf16' for ``precision`` ('auto', 'fp32' or 'bf16') on ``device``.

    'auto': bf16 on a CUDA GPU that supports it; on CPU what ``probe()`` answers ("fp32" or "bf16",
    e.g. ``probe_precision(step, device).fastest``), fp32 without a probe; fp32 elsewhere. The probe is
    called only when its answer is used.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and probe is not None:
        choice = probe()
        if choice not in ("fp32", "bf16"):
            raise ValueError(f"the precision probe answered {choice!r}; expected 'fp32' or 'bf16'")
        return choice
    return "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Context manager for the forward pass under ``precision`` ('fp32' or 'bf16')."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
