"""What an image run adds around the Trainer (its :class:`~fromzero.train.hooks.TrainerHooks`).

    extra_metrics       whole-split metrics (mAP for detection, mIoU for segmentation)
    on_best             a copy of the whole state at the best evaluation: parameters AND BatchNorm running
                        statistics, so the kept model evaluates exactly as it did when it was selected
    checkpoint_extras   ``best.safetensors``, so a resumed run keeps its best selection
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fromzero.train.checkpoint import Checkpoint, load_checkpoint_tensors
from fromzero.train.hooks import TrainerHooks
from fromzero.vision.tasks import validation_metrics

BEST_FILE = "best"


class VisionHooks(TrainerHooks):
    """Whole-validation-split metrics and best-state tracking for one image run."""

    def __init__(self, model: nn.Module, task: str, val_batches, n_batches: int, class_names: list[str],
                 detect: dict[str, Any]) -> None:
        self.model, self.task, self.val, self.n_batches = model, task, val_batches, n_batches
        self.class_names, self.detect = class_names, detect
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_step: int | None = None

    def extra_metrics(self, model: nn.Module) -> dict[str, float]:
        return validation_metrics(self.task, model, self.val, self.n_batches, self.class_names, self.detect)

    def on_best(self, step: int, metrics: dict[str, float]) -> None:
        self.best_step = step
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore_best(self) -> None:
        """Put the best evaluation's state back (no-op before any evaluation)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def checkpoint_extras(self) -> dict[str, dict[str, torch.Tensor]]:
        return {BEST_FILE: self.best_state} if self.best_state is not None else {}

    def restore(self, ckpt: Checkpoint, payload: dict[str, Any]) -> None:
        best = load_checkpoint_tensors(ckpt, BEST_FILE)
        if best is not None:
            device = next(self.model.parameters()).device
            self.best_state = {k: v.to(device) for k, v in best.items()}
            self.best_step = payload["trainer"].get("best_step")
