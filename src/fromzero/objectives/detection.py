"""Object detection: (detector, batch) -> the detector's own loss and its named components.

Each detector family defines its loss (``models/yolo.py``: objectness + class BCE + GIoU;
``models/rcnn.py``: RPN objectness and box terms + box-head classification and box terms), so the
objective checks the batch, calls ``model.loss(pixels, boxes, box_labels)`` and reports every
component as a metric. Batch: ``pixels`` (B, C, H, W) float; ``boxes`` (B, M, 4) float xyxy in input
pixels, padding rows zero; ``box_labels`` (B, M) int64 in [0, K), -1 marking padding rows.
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.errors import DataError
from fromzero.objectives.base import ObjectiveOutput


def check_detection_batch(batch: dict[str, torch.Tensor], num_classes: int | None) -> None:
    """Raise DataError naming the field when the batch does not follow the detection contract."""
    for key in ("pixels", "boxes", "box_labels"):
        if key not in batch:
            raise DataError(f"detection batch has no {key!r}; it needs pixels, boxes and box_labels")
    pixels, boxes, labels = batch["pixels"], batch["boxes"], batch["box_labels"]
    b = pixels.shape[0]
    if pixels.dim() != 4:
        raise DataError(f"pixels must be (B, C, H, W), got shape {tuple(pixels.shape)}")
    if boxes.dim() != 3 or boxes.shape[0] != b or boxes.shape[2] != 4:
        raise DataError(f"boxes must be (B, M, 4) with B = {b}, got shape {tuple(boxes.shape)}")
    if labels.shape != boxes.shape[:2] or labels.is_floating_point():
        raise DataError(f"box_labels must be integer (B, M) = {tuple(boxes.shape[:2])}, "
                        f"got {labels.dtype} {tuple(labels.shape)}")
    bad = labels < -1
    if num_classes is not None:
        bad |= labels >= num_classes
    if bool(bad.any()):
        i, j = (int(v) for v in bad.nonzero()[0])
        raise DataError(f"box_labels[{i}, {j}] = {int(labels[i, j])} is not a class in [0, {num_classes}) "
                        "nor -1 (padding); check the dataset's class list against the model's num_classes")


class Detection:
    """Loss of a detector (``detector-yolo``, ``detector-rcnn``) on a detection batch.

    Metrics: ``loss`` and every other entry of the model's loss dict (detached), e.g. ``loss_obj``,
    ``loss_cls``, ``loss_box`` or ``rpn_obj``, ``rpn_box``, ``roi_cls``, ``roi_box``. weight = images.
    """

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        config = getattr(model, "config", None)
        check_detection_batch(batch, getattr(config, "num_classes", None))
        out = model.loss(batch["pixels"], batch["boxes"], batch["box_labels"])
        metrics = {name: value.detach().float() for name, value in out.items()}
        return ObjectiveOutput(loss=out["loss"], metrics=metrics, weight=int(batch["pixels"].shape[0]))


__all__ = ["Detection", "check_detection_batch"]
