"""Device choice and mixed precision.

bf16 autocast runs matmuls in bfloat16 while weights, optimizer state and
the loss stay fp32; it needs no loss scaling (bf16 has fp32's exponent
range). "auto" uses it on GPUs that support bf16 and stays fp32 on CPU,
where bf16 matmuls are usually slower.
"""

from __future__ import annotations

import contextlib
from typing import Literal

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


def resolve_precision(precision: Literal["auto", "fp32", "bf16"], device: torch.device) -> str:
    if precision == "auto":
        bf16_ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if bf16_ok else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Context manager for the forward pass under ``precision`` ('fp32' or 'bf16')."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
