"""Image classification runs: Grad-CAM on the last convolutional stage, FGSM / PGD on pixels.

Grad-CAM (Selvaraju et al., 2017), Captum's ``LayerGradCam``: with A^k the k-th feature map of the last
convolutional stage and y_c the target logit,

    w_k = mean_{ij} dy_c / dA^k_ij,      CAM = relu(sum_k w_k A^k),   upsampled to the image size.

The stage is ``stages[-1]`` for ResNet and the last conv block of ``body`` for the LeNet-style CNN; other
families (ViT, Inception, ...) have no such single stage here, and asking for Grad-CAM on them is an error.
Pixel attacks work in [0, 1] pixel space (eps in those units, e.g. 8/255), clipped to [0, 1], and normalise
with the run's mean / std before the model, exactly as predict does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.errors import CheckpointError
from fromzero.explain.perturbation import perturb
from fromzero.progress import progress
from fromzero.runs import Run


def require_image_classifier(run: Run, command: str) -> None:
    """An image run must be an image-classification run."""
    if run.kind != "image_classification":
        raise CheckpointError(f"{run.path}: a {run.kind} image run; `fromzero {command}` needs an "
                              "image_classification run (or a fine-tuned text classifier)")


def last_conv_stage(model: nn.Module) -> nn.Module:
    """The module whose output Grad-CAM weighs; a CheckpointError for families without one."""
    stages = getattr(model, "stages", None)
    if isinstance(stages, nn.Sequential) and len(stages):
        return stages[-1]
    body = getattr(model, "body", None)
    if isinstance(body, nn.Sequential):
        convs = [m for m in body if not isinstance(m, nn.MaxPool2d | nn.AvgPool2d)]
        if convs:
            return convs[-1]
    raise CheckpointError(f"Grad-CAM needs a convolutional stage (cnn, resnet families); a "
                          f"{type(model).__name__} has none: explain it with another method")


def _normaliser(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    vision = run.vision or {}
    return (torch.tensor(vision["mean"], dtype=torch.float32).view(1, -1, 1, 1),
            torch.tensor(vision["std"], dtype=torch.float32).view(1, -1, 1, 1))


def grad_cam(run: Run, images: torch.Tensor, target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, C, H, W) -> (CAM (N, H, W) scaled to [0, 1] per image, the target classes (N,))."""
    from captum.attr import LayerAttribution, LayerGradCam

    mean, std = _normaliser(run)
    pixels = (images.float() / 255 - mean) / std
    with torch.no_grad():
        predicted = run.model(pixels).argmax(-1)
    target = predicted if target is None else target
    cam = LayerGradCam(run.model, last_conv_stage(run.model)).attribute(pixels, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam.detach(), tuple(images.shape[2:]), interpolate_mode="bilinear")[:, 0]
    top = cam.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
    return cam / top, target


def pixel_accuracy_under_attack(run: Run, images: torch.Tensor, labels: torch.Tensor, method: str,
                                eps_list: Sequence[float], steps: int = 10, batch_size: int = 64,
                                show: bool = True) -> list[float]:
    """Accuracy of uint8 ``images`` under FGSM / PGD in [0, 1] pixel space at each eps."""
    mean, std = _normaliser(run)
    correct = [0] * len(eps_list)
    chunks = list(range(0, len(images), batch_size))
    for start in progress(chunks, desc=f"{method} on pixels", unit="batch", enabled=show):
        x, y = images[start:start + batch_size].float() / 255, labels[start:start + batch_size]

        def loss(p: torch.Tensor, y: torch.Tensor = y) -> torch.Tensor:
            return F.cross_entropy(run.model((p - mean) / std).float(), y, reduction="sum")

        for j, eps in enumerate(eps_list):
            adv = perturb(method, loss, x, eps, steps, clip=lambda p: p.clamp(0, 1))
            with torch.no_grad():
                correct[j] += int((run.model((adv - mean) / std).argmax(-1) == y).sum())
    return [c / max(1, len(images)) for c in correct]
