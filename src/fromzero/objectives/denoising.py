"""Denoising: the distance between the model's clean estimate and the clean target, and its PSNR.

For a noisy batch y and clean targets x (B, C, H, W), both in [0, 1] (not mean/std normalised), and the
estimate x_hat = model(y):

    mse:  L = mean (x_hat - x)^2          l1:  L = mean |x_hat - x|
    PSNR_b = 10 log10(1 / mean_{c,h,w} (clip(x_hat_b, 0, 1) - x_b)^2)     per image, data range 1
    psnr  = mean_b PSNR_b

PSNR is scored on the estimate clipped to [0, 1], the image one would save, per image and then averaged
(as scikit-image's ``peak_signal_noise_ratio(x_b, x_hat_b, data_range=1)`` per image). An exact image
(MSE 0) counts as 100 dB rather than infinity, so one perfect image cannot make the mean infinite.
weight = images in the batch.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.errors import ConfigError, DataError
from fromzero.objectives.base import ObjectiveOutput

LOSSES = ("mse", "l1")
MIN_MSE = 1e-10  # PSNR cap: 10 log10(1 / 1e-10) = 100 dB


def psnr_per_image(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) x 2 in [0, 1] -> (B,) PSNR in dB of each image (estimate clipped to [0, 1])."""
    err = (estimate.float().clamp(0.0, 1.0) - target.float()).pow(2).flatten(1).mean(dim=1)  # (B,)
    return 10.0 * torch.log10(1.0 / err.clamp_min(MIN_MSE))


class Denoising:
    """``loss`` ("mse" or "l1") between ``model(batch["pixels"])`` and ``batch["target"]``; metrics
    ``loss`` and ``psnr`` (mean per-image PSNR in dB)."""

    def __init__(self, loss: Literal["mse", "l1"] = "mse") -> None:
        if loss not in LOSSES:
            raise ConfigError(f"loss: {loss!r} is not one of {', '.join(LOSSES)}")
        self.loss = loss

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        estimate = model(batch["pixels"]).float()  # (B, C, H, W)
        target = batch["target"].float()  # (B, C, H, W)
        if estimate.shape != target.shape:
            raise DataError(f"denoising targets have shape {tuple(target.shape)} but the model returned "
                            f"{tuple(estimate.shape)}; the clean and noisy images must have one shape")
        loss = F.mse_loss(estimate, target) if self.loss == "mse" else F.l1_loss(estimate, target)
        psnr = psnr_per_image(estimate.detach(), target).mean()
        return ObjectiveOutput(loss=loss, metrics={"loss": loss.detach(), "psnr": psnr},
                               weight=int(target.shape[0]))
