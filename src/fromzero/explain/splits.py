"""A run's own labelled examples of one split: encoded features for a text classifier, uint8 images for an
image-classification run. What ``explain --dataset`` and ``attack`` read."""

from __future__ import annotations

from dataclasses import fields

import torch

from fromzero.errors import ConfigError
from fromzero.explain.classifier import TextClassifier
from fromzero.runs import Run


def text_split(clf: TextClassifier, split: str, limit: int | None = None) -> list[dict]:
    """The run's copy of ``split`` (validation or test, as fine-tuning kept it), encoded with its tokenizer."""
    from fromzero.finetune.evaluate import FinetunedRun, finetuned_task_data
    from fromzero.finetune.recipe import load_finetune_recipe

    files = (clf.run.info or {}).get("files") or {}
    if split not in files:
        raise ConfigError(f"--split {split}: {clf.run.path} keeps {', '.join(sorted(files)) or 'no'} split copies; "
                          f"choose one of them")
    run = FinetunedRun(**{f.name: getattr(clf.run, f.name) for f in fields(clf.run)},
                       recipe=load_finetune_recipe(clf.run.path / "config.yaml"))
    features = finetuned_task_data(run, split).features[split]
    return features[:limit] if limit else features


def image_split(run: Run, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, C, H, W), labels (N,)) of ``split`` of an image-classification run's recipe data."""
    from fromzero.data.datasets.image_sources import load_image_data
    from fromzero.vision.recipe import load_vision_recipe

    if split not in ("train", "validation", "test"):
        raise ConfigError(f"--split {split}: choose train, validation or test")
    file = str(run.path / "config.yaml")
    recipe = load_vision_recipe(file)
    data = getattr(load_image_data(recipe.data, recipe.seed, file), split)
    images, labels = data.images, data.labels
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, labels
