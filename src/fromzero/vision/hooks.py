"""What an image run adds around the Trainer (its :class:`~fromzero.train.hooks.TrainerHooks`).

    extra_metrics       whole-split metrics (mAP for detection, mIoU for segmentation)
    on_best, checkpoint_extras, restore
                        the whole state at the best evaluation (``train.best_state``): parameters AND
                        BatchNorm running statistics, kept across a resume in ``best.safetensors``
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fromzero.train.best_state import BestStateHooks
from fromzero.vision.tasks import validation_metrics


class VisionHooks(BestStateHooks):
    """Whole-validation-split metrics and best-state tracking for one image run."""

    def __init__(self, model: nn.Module, task: str, val_batches, n_batches: int, class_names: list[str],
                 detect: dict[str, Any]) -> None:
        super().__init__(model)
        self.task, self.val, self.n_batches = task, val_batches, n_batches
        self.class_names, self.detect = class_names, detect

    def extra_metrics(self, model: nn.Module) -> dict[str, float]:
        return validation_metrics(self.task, model, self.val, self.n_batches, self.class_names, self.detect)
