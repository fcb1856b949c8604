"""The Trainer's extension points: one small class to subclass, instead of loose callbacks.

Pretraining uses none of them. Fine-tuning overrides all of them
(``fromzero.finetune.hooks``): it scores the whole validation set with the
metric libraries, keeps the best evaluation's weights, and checkpoints only
its trainable tensors. Every default adds nothing, so a subclass overrides
just what it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from fromzero.objectives import Objective
from fromzero.train.checkpoint import Checkpoint

#: What a runner calls once with the built model before training; returns the model to train (the same one
#: changed in place, or another, e.g. a smaller student).
PrepareModel = Callable[[nn.Module], nn.Module]
#: What a runner passes the task objective through; it returns the objective the Trainer trains.
WrapObjective = Callable[[Objective], Objective]


class TrainerHooks:
    """What a run adds around the Trainer's loop (see the module docstring)."""

    #: True when :meth:`checkpoint_weights` replaces the whole model in each checkpoint; a resume then
    #: restores the weights through :meth:`restore` instead of loading the whole model.
    owns_weights: bool = False

    def extra_metrics(self, model: nn.Module) -> dict[str, float]:
        """Metrics added to each evaluation (the Trainer prefixes ``val_``), e.g. macro-F1 over the validation set."""
        return {}

    def on_best(self, step: int, metrics: dict[str, float]) -> None:
        """Called at each new best evaluation by the selection metric, with that evaluation's metrics."""

    def checkpoint_weights(self) -> dict[str, torch.Tensor]:
        """What ``model.safetensors`` of a checkpoint holds when :attr:`owns_weights` is set."""
        return {}

    def checkpoint_extras(self) -> dict[str, dict[str, torch.Tensor]]:
        """Named tensor sets saved beside the weights, atomically with them (``<name>.safetensors``)."""
        return {}

    def restore(self, ckpt: Checkpoint, payload: dict[str, Any]) -> None:
        """On resume: load what :meth:`checkpoint_weights` and :meth:`checkpoint_extras` saved
        (``payload``: the checkpoint's state.json)."""
