"""Masked image modelling (MAE): mean squared error of the predicted pixels, on the masked patches only.

For a model returning pred (B, L, P) and mask (B, L) (1 = hidden from the encoder), with
targets t = patchify(pixels) (B, L, P):

    t'_bl = (t_bl - mean(t_bl)) / sqrt(var(t_bl) + 1e-6)        per-patch normalisation (norm_pix_loss)
    L = sum_bl m_bl e_bl / sum_bl m_bl,   e_bl = (1/P) sum_j (pred_blj - t'_blj)^2

Only masked patches count: reconstructing the visible ones is trivial and would teach
nothing (He et al., 2021, "Masked Autoencoders Are Scalable Vision Learners",
https://arxiv.org/abs/2111.06377, section 3; var is the unbiased variance, as their code).
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.objectives.base import ObjectiveOutput

NORM_EPS = 1e-6


def pixel_targets(patches: torch.Tensor, normalize: bool) -> torch.Tensor:
    """(B, L, P) patch pixels -> reconstruction targets, normalised per patch when ``normalize``."""
    if not normalize:
        return patches
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)  # unbiased, as MAE's code
    return (patches - mean) / (var + NORM_EPS).sqrt()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked patches (mask (B, L), 1 = masked) of the per-patch mean squared error."""
    per_patch = (pred - target).pow(2).mean(dim=-1)  # (B, L)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1.0)


class MaskedImageModeling:
    """MAE loss on ``model(batch["pixels"], batch["mask_noise"])``; targets normalised per patch when the model's
    config says ``norm_pix_loss``. Metrics: ``loss``. weight = images."""

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        pixels = batch["pixels"]
        pred, mask = model(pixels, batch["mask_noise"])  # (B, L, P), (B, L)
        target = pixel_targets(model.patchify(pixels), bool(getattr(model.config, "norm_pix_loss", False)))
        loss = masked_mse(pred.float(), target.float(), mask.float())
        return ObjectiveOutput(loss=loss, metrics={"loss": loss.detach()}, weight=int(pixels.shape[0]))
