"""Running a trained image model on uint8 images: what eval, predict and serve share (no training imports).

    pixels = (x / 255 - mean_c) / std_c         every task but denoising (mean, std from vision.json)
    pixels = x / 255                             denoising: the model maps noisy [0, 1] to clean [0, 1]

Outputs by task: class probabilities (N, K); per-image boxes / scores / labels after NMS; a class per
pixel (N, H, W); the denoised image in [0, 1]; for MAE, the reconstruction with the visible patches pasted
back (N, C, H, W) and the patch mask.
"""

from __future__ import annotations

from typing import Any

import torch

from fromzero.errors import DataError
from fromzero.runs import Run


def normalise(images: torch.Tensor, vision: dict[str, Any]) -> torch.Tensor:
    """uint8 (N, C, H, W) -> the float pixels the model was trained on."""
    x = images.float() / 255.0
    if vision["task"] == "denoising":
        return x
    mean = torch.tensor(vision["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(vision["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


def check_images(images: torch.Tensor, vision: dict[str, Any], where: str) -> None:
    """The images have the channel count (and, where the model needs it, the size) the run was trained on."""
    channels = int(vision["channels"])
    if images.dim() != 4 or images.shape[1] != channels:
        got = images.shape[1] if images.dim() == 4 else "?"
        kind = "grayscale" if channels == 1 else f"{channels}-channel"
        raise DataError(f"{where}: the model takes {kind} images but got {got} channels; convert the image "
                        f"(predict converts files automatically) or use a run trained on {got}-channel images")
    size = vision.get("image_size")
    fixed = vision.get("fixed_size", True)
    if fixed and size is not None and list(images.shape[2:]) != list(size):
        raise DataError(f"{where}: the model takes {size[0]}x{size[1]} images, got "
                        f"{images.shape[2]}x{images.shape[3]}; resize it first")


@torch.no_grad()
def predict_batch(run: Run, images: torch.Tensor, detect: dict[str, Any] | None = None) -> Any:
    """One batch of uint8 images -> the task's outputs (see the module docstring)."""
    vision, model = run.vision, run.model
    assert vision is not None and model is not None
    pixels = normalise(images, vision)
    task = vision["task"]
    if task == "image_classification":
        return torch.softmax(model(pixels).float(), dim=-1)
    if task == "detection":
        return model.detect(pixels, **(detect or vision.get("detect") or {}))
    if task == "segmentation":
        return model(pixels).argmax(1)
    if task == "denoising":
        return model(pixels).clamp(0, 1)
    # mae: a fixed seeded masking so a reconstruction is reproducible
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(pixels.shape[0], model.num_patches, generator=gen)
    pred, mask = model(pixels, noise)
    return model.reconstruct(pixels, pred, mask), mask


def predict_all(run: Run, images: torch.Tensor, batch_size: int = 64, detect: dict[str, Any] | None = None) -> Any:
    """All images in batches; outputs concatenated (a list for detection)."""
    outs = [predict_batch(run, images[i:i + batch_size], detect) for i in range(0, len(images), batch_size)]
    if run.kind == "detection":
        return [d for out in outs for d in out]
    if run.kind == "mae":
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    return torch.cat(outs)
