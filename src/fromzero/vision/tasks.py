"""What each vision task needs around the Trainer: its objective, the model fields the data fills, and
validation metrics computed over the whole validation split.

    task                  objective                 model fields from the data             selection
    image_classification  ImageClassification       in_channels, num_classes, image_size   accuracy
    detection             Detection (model.loss)    in_channels, num_classes, image_size   mAP@0.5
    segmentation          Segmentation              in_channels, num_classes (+1 bg), size mIoU
    denoising             Denoising                 in_channels                            PSNR
    mae                   MaskedImageModeling       in_channels, image_size                loss
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from fromzero.data.image_set import ImageSet
from fromzero.errors import ConfigError
from fromzero.eval.image_metrics import detection_scores, segmentation_scores
from fromzero.objectives import Objective
from fromzero.objectives.denoising import Denoising
from fromzero.objectives.detection import Detection
from fromzero.objectives.image_classification import ImageClassification
from fromzero.objectives.masked_image import MaskedImageModeling
from fromzero.objectives.segmentation import Segmentation

OBJECTIVES: dict[str, type] = {
    "image_classification": ImageClassification, "detection": Detection, "segmentation": Segmentation,
    "denoising": Denoising, "mae": MaskedImageModeling,
}


def build_objective(task: str, settings: dict[str, Any], file: str) -> Objective:
    """The task's objective from the recipe's ``objective:`` section (unknown keys name the accepted ones)."""
    cls = OBJECTIVES[task]
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    for key in settings:
        if key not in accepted:
            raise ConfigError(f"{file}: objective.{key}: not a setting of {task} (accepted: "
                              f"{', '.join(accepted) or 'none'})")
    try:
        return cls(**settings)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{file}: objective: {err}") from None


def model_fill(task: str, train: ImageSet) -> dict[str, Any]:
    """Model config fields the data decides (set where the recipe leaves them unset)."""
    h, w = train.size
    fill: dict[str, Any] = {"in_channels": train.channels, "image_size": h if h == w else None}
    if task in ("image_classification", "detection"):
        fill["num_classes"] = len(train.class_names)
    elif task == "segmentation":
        fill["num_classes"] = len(train.mask_classes)
    return {k: v for k, v in fill.items() if v is not None}


@torch.no_grad()
def detections(model: nn.Module, batches, n_batches: int, detect: dict[str, Any]) -> tuple[list, list]:
    """(predictions, targets) over ``n_batches`` evaluation batches, in the metric's dict format."""
    preds, targets = [], []
    for i in range(n_batches):
        batch = batches.batch(i, 0)
        device = next(model.parameters()).device
        preds += [{k: v.cpu() for k, v in d.items()} for d in model.detect(batch["pixels"].to(device), **detect)]
        for boxes, labels in zip(batch["boxes"], batch["box_labels"], strict=True):
            keep = labels >= 0
            targets.append({"boxes": boxes[keep], "labels": labels[keep]})
    return preds, targets


@torch.no_grad()
def segmentations(model: nn.Module, batches, n_batches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted, true) class maps over ``n_batches`` evaluation batches."""
    device = next(model.parameters()).device
    pred, true = [], []
    for i in range(n_batches):
        batch = batches.batch(i, 0)
        pred.append(model(batch["pixels"].to(device)).argmax(1).cpu())
        true.append(batch["masks"])
    return torch.cat(pred), torch.cat(true)


def validation_metrics(task: str, model: nn.Module, batches, n_batches: int, class_names: list[str],
                       detect: dict[str, Any]) -> dict[str, float]:
    """Metrics that need the whole validation split (not a mean over batches): mAP, mIoU."""
    was_training = model.training
    model.eval()
    try:
        if task == "detection":
            scores = detection_scores(*detections(model, batches, n_batches, detect))
            return {k: scores[k] for k in ("map_50", "map")}
        if task == "segmentation":
            pred, true = segmentations(model, batches, n_batches)
            scores = segmentation_scores(pred, true, len(class_names) + 1, ["background", *class_names])
            return {"miou": scores["miou"], "dice": scores["dice"]}
        return {}
    finally:
        model.train(was_training)
