"""The objective interface: (model, batch) -> loss + named metrics.

The Trainer only ever calls an objective; it knows nothing about what the
model is (GPT, BERT, an image classifier). Batches are dicts of tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn


@dataclass
class ObjectiveOutput:
    """loss: scalar to minimise; metrics: named scalars (detached); weight: how many items were scored,
    so metrics average correctly over micro-batches of different sizes."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    weight: int = 1


class Objective(Protocol):
    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput: ...
