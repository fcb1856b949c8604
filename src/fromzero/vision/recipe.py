"""The vision recipe: a task, image data, a model; validated before any work starts.

    seed: 0
    out: runs/fashion_resnet
    task: image_classification        # | detection | segmentation | denoising | mae
    data: {source: fashion-mnist, validation: 0.1, label_fraction: 1.0}
    augment: {hflip: 0.5, crop_padding: 2}
    model: {name: resnet-small-w32}    # preset or family + field overrides; channels / classes come from the data
    init: null                         # a run directory to start from (an MAE run's encoder for a vit)
    select_metric: accuracy
    train: {max_steps: 2000, batch_size: 128}
    optim: {lr: 2e-3}

``fromzero train RECIPE`` runs it; every key can be overridden on the command line (``--train.max_steps=50``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fromzero.config import apply_overrides, field, from_dict, load_yaml, require, to_dict
from fromzero.data.datasets.image_sources import ImageDataConfig
from fromzero.data.image_augment import AugmentConfig
from fromzero.data.image_batches import NoiseConfig
from fromzero.errors import ConfigError
from fromzero.models import data_filled_config
from fromzero.runs import VISION_TASKS
from fromzero.train.optim import OptimConfig
from fromzero.train.trainer import TrainConfig
from fromzero.vision.adversarial import ImageAdversarialConfig

VisionTask = Literal["image_classification", "detection", "segmentation", "denoising", "mae"]
TASKS = VISION_TASKS
# Validation metrics each task may select on; the first is the default. loss / mse are minimised.
SELECT_METRICS = {
    "image_classification": ("accuracy", "loss"),
    "detection": ("map_50", "map", "loss"),
    "segmentation": ("miou", "pixel_accuracy", "loss"),
    "denoising": ("psnr", "loss"),
    "mae": ("loss",),
}


@dataclass(frozen=True)
class DetectConfig:
    """How a detector's raw scores become boxes (validation mAP, test, predict, serve)."""

    score_threshold: float = field(0.05, help="drop boxes scoring below this")
    iou_threshold: float = field(0.5, help="per-class NMS IoU threshold")
    max_detections: int = field(100, help="boxes kept per image")

    def __post_init__(self) -> None:
        require(0.0 <= self.score_threshold < 1.0, "score_threshold", "must be in [0, 1)")
        require(0.0 < self.iou_threshold <= 1.0, "iou_threshold", "must be in (0, 1]")
        require(self.max_detections > 0, "max_detections", "must be positive")


@dataclass(frozen=True)
class VisionRecipe:
    """A complete vision run: classification, detection, segmentation, denoising or MAE pretraining."""

    task: VisionTask = field("image_classification", help="what the model learns (its objective and metrics)")
    data: ImageDataConfig = field(default_factory=ImageDataConfig, help="where the images come from")
    augment: AugmentConfig = field(default_factory=AugmentConfig, help="training augmentation (seeded)")
    noise: NoiseConfig = field(default_factory=NoiseConfig, help="denoising: the synthetic noise")
    model: dict[str, Any] = field(default_factory=lambda: {"name": "cnn-small"},
                                  help="name: a preset or family, plus field overrides")
    objective: dict[str, Any] = field(default_factory=dict, help="loss settings: label_smoothing "
                                      "(classification), dice_weight (segmentation), loss: mse|l1 (denoising)")
    detect: DetectConfig = field(default_factory=DetectConfig, help="detection: thresholds for boxes")
    adversarial: ImageAdversarialConfig = field(default_factory=ImageAdversarialConfig,
                                                help="image_classification: FGSM / PGD adversarial training on "
                                                     "pixels (L-inf, eps in [0, 1] units; vision/adversarial.py)")
    init: str | None = field(None, help="a run directory whose weights start this model: the same family, "
                                        "or an MAE run's encoder for a vit")
    select_metric: str | None = field(None, help="validation metric for the best checkpoint and early stopping "
                                                 "(null: the task's first)")
    train: TrainConfig = field(default_factory=TrainConfig, help="loop settings")
    optim: OptimConfig = field(default_factory=OptimConfig, help="optimizer and schedule")
    seed: int = field(0, help="fixes the split, init, augmentation and data order")
    out: str | None = field(None, help="run directory (default: runs/<recipe name>)")

    def __post_init__(self) -> None:
        choices = SELECT_METRICS[self.task]
        require(self.select_metric is None or self.select_metric in choices, "select_metric",
                f"{self.select_metric!r} is not one of {', '.join(choices)} for {self.task}")
        require(not self.augment.mixes or self.task == "image_classification", "augment",
                "mixup / cutmix mix labels: only image_classification can use them")
        require(not self.adversarial.active or self.task == "image_classification", "adversarial.method",
                f"adversarial training applies to image_classification, not {self.task}; set adversarial.method: none")

    @property
    def metric(self) -> str:
        """The selection metric (given, or the task's default)."""
        return self.select_metric or SELECT_METRICS[self.task][0]

    def model_name(self, file: str | None = None) -> str:
        name = self.model.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{file + ': ' if file else ''}model.name: required (a preset such as 'cnn-small' "
                              "or a family such as 'resnet')")
        return name

    def model_config(self, fill: dict[str, Any], file: str | None = None) -> Any:
        """The validated family config; ``fill`` (in_channels, num_classes, image_size from the data) is set
        where the recipe leaves a field unset, and a recipe value that disagrees with the data is an error."""
        values = {k: v for k, v in self.model.items() if k != "name"}
        return data_filled_config(self.model_name(file), values, fill, file)


def load_vision_recipe(path: str | Path | None, overrides: list[str] | None = None) -> VisionRecipe:
    """Read, override and validate a vision recipe; every error names the file and the key."""
    file = str(path) if path is not None else "<overrides>"
    data = load_yaml(path) if path is not None else {}
    return from_dict(VisionRecipe, apply_overrides(data, overrides or []), file=file)


def recipe_dict(recipe: VisionRecipe) -> dict[str, Any]:
    """The resolved recipe as saved in config.yaml (loads back with :func:`load_vision_recipe`)."""
    return to_dict(recipe)
