"""Optimizer and learning-rate schedule factories.

Weight decay applies only to matrices of linear layers: decaying norms,
biases and embeddings pulls them toward zero for no regularisation benefit
(Loshchilov & Hutter 2019; GPT-2 / nanoGPT practice).

Adam and AdamW run torch's fused kernel wherever torch has one for the
parameters' device (CPU and CUDA among them): one pass over all tensors
instead of about ten small ops per tensor. On a 2-core CPU it updates the
10.7M parameters of gpt-char-6x384 in ~5 ms instead of ~30 ms (the default
per-tensor loop; torch's foreach path is no faster there), with the same
update up to float rounding. Elsewhere they use the foreach path where torch
has one, else the per-tensor loop.

Schedule (multiplier on the peak lr, step s counted from 0):
    warmup:   (s + 1) / warmup_steps                         for s < warmup_steps
    cosine:   min + (1 - min) * 0.5 * (1 + cos(pi * p))       p = progress after warmup in [0, 1]
    linear:   min + (1 - min) * (1 - p)
    constant: 1
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fromzero.config import field, require

try:  # torch's own lists of devices with fused / foreach optimizer kernels (private, so guarded)
    from torch.utils._foreach_utils import _get_foreach_kernels_supported_devices as _foreach_devices
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices as _fused_devices
except ImportError:  # pragma: no cover - older or newer torch without them
    def _fused_devices() -> list[str]:
        return ["cuda", "cpu"]

    def _foreach_devices() -> list[str]:
        return ["cuda"]


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule."""

    name: Literal["adamw", "adam", "sgd", "rmsprop", "adafactor"] = field(
        "adamw", help="optimizer; adafactor (T5's): each update scales with its parameter's RMS, so N(0, 1) "
                      "embeddings move as fast as small projections (lr ~1e-2)")
    lr: float = field(1e-3, help="peak learning rate")
    weight_decay: float = field(0.1, help="decoupled weight decay (AdamW) or L2 (others) on matrices only")
    betas: list[float] = field([0.9, 0.95], help="Adam/AdamW betas")
    eps: float = field(1e-8, help="Adam/AdamW/RMSprop epsilon")
    momentum: float = field(0.9, help="SGD / RMSprop momentum")
    schedule: Literal["cosine", "linear", "constant"] = field("cosine", help="lr decay after warmup")
    warmup_steps: int = field(100, help="linear warmup steps")
    min_lr_ratio: float = field(0.1, help="final lr as a fraction of the peak (cosine, linear)")

    def __post_init__(self) -> None:
        require(self.lr > 0, "lr", f"must be positive, got {self.lr}")
        require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
                f"must be two numbers in [0, 1), got {self.betas}")
        require(self.eps > 0, "eps", "must be positive")
        require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into decayed (linear weights) and non-decayed groups."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))  # tied weights appear twice; the first owner (embedding) wins
            if isinstance(module, nn.Linear) and name == "weight":
                decay.append(param)
            else:
                no_decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def adam_implementation(params: Iterable[torch.Tensor]) -> dict[str, bool]:
    """The fastest Adam(W) kernel torch has for ``params``: ``{"fused": True}``, ``{"foreach": True}`` or ``{}``.

    Fused and foreach kernels need every parameter on one device type (and floating point, for fused).
    """
    params = list(params)
    devices = {p.device.type for p in params}
    if len(devices) != 1:
        return {}
    device = devices.pop()
    if device in _fused_devices() and all(p.is_floating_point() for p in params):
        return {"fused": True}
    return {"foreach": True} if device in _foreach_devices() else {}


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer named in ``cfg`` over ``model``'s trainable parameters (build it after moving the model)."""
    groups = param_groups(model, cfg.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    if cfg.name in ("adamw", "adam"):
        kernel = adam_implementation(p for g in groups for p in g["params"])
        adam = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
        return adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, **kernel)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.name == "adafactor":  # step size min(lr, 1/sqrt(t)) * max(1e-3, RMS(param)); factored second moments
        return torch.optim.Adafactor(groups, lr=cfg.lr)
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps)


def lr_multiplier(step: int, cfg: OptimConfig, max_steps: int) -> float:
    """Multiplier on the peak lr at optimizer step ``step`` (0-based)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.min_lr_ratio
    if cfg.schedule == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return floor + (1 - floor) * (1 - progress)


def set_lr(optimizer: torch.optim.Optimizer, step: int, cfg: OptimConfig, max_steps: int) -> float:
    """Set every group's lr for ``step``; return it. Stateless, so resume needs only the step."""
    lr = cfg.lr * lr_multiplier(step, cfg, max_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
