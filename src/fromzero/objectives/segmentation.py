"""Semantic segmentation: per-pixel cross-entropy, plus an optional soft Dice loss.

For logits z (B, K, H, W) and a mask y (B, H, W) (0 background, k + 1 class k, ``ignore_index`` = not
scored), over the set V of scored pixels i of the whole batch:

    CE   = -(1/|V|) sum_{i in V} log softmax(z_i)[y_i]                  (``F.cross_entropy``'s mean)
    Dice = 1 - (1/K) sum_k (2 sum_{i in V} p_ik g_ik + 1) / (sum_{i in V} p_ik + sum_{i in V} g_ik + 1)
    L    = CE + dice_weight * Dice

with p = softmax(z) over classes and g the one-hot mask. The soft Dice loss (Milletari et al., 2016,
"V-Net", https://arxiv.org/abs/1606.04797, here with plain sums in the denominator) counts every class
equally however few pixels it has, which CE does not; the +1 smoothing keeps a class absent from both
the mask and the prediction at Dice 1 (no loss) rather than 0/0. Metrics: ``loss``, ``pixel_accuracy``
(argmax right, over scored pixels), and with Dice also ``cross_entropy`` and ``dice_loss``.
weight = images in the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.errors import ConfigError, DataError
from fromzero.objectives.base import ObjectiveOutput

DICE_SMOOTH = 1.0


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor,
                   smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """1 - mean over classes of the soft Dice score. logits (B, K, H, W); masks (B, H, W) in [0, K) where
    ``valid`` (B, H, W) bool is true (other pixels are left out of every sum)."""
    num_classes = logits.shape[1]
    probs = logits.float().softmax(dim=1)  # (B, K, H, W)
    keep = valid.unsqueeze(1).float()  # (B, 1, H, W)
    onehot = F.one_hot(masks.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2).float()  # (B, K, H, W)
    probs, onehot = probs * keep, onehot * keep
    dims = (0, 2, 3)
    overlap = (probs * onehot).sum(dims)  # (K,)
    total = probs.sum(dims) + onehot.sum(dims)  # (K,)
    return 1.0 - ((2.0 * overlap + smooth) / (total + smooth)).mean()


def _check_masks(logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> None:
    if logits.shape[0] != masks.shape[0] or logits.shape[2:] != masks.shape[1:]:
        raise DataError(f"segmentation masks have shape {tuple(masks.shape)} but the model's logits "
                        f"{tuple(logits.shape)}; masks must be (B, H, W) at the images' size")
    num_classes = logits.shape[1]
    scored = torch.where(valid, masks, 0)  # ignored pixels read as background (always in range)
    low, high = int(scored.min()), int(scored.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(f"a segmentation mask holds class {bad}, outside [0, {num_classes}) for a model with "
                        f"num_classes={num_classes} (background included); set model.num_classes to "
                        f"{max(bad + 1, num_classes)} or fix the masks")


class Segmentation:
    """Pixel cross-entropy (+ ``dice_weight`` x soft Dice) of ``model(batch["pixels"])`` against
    ``batch["masks"]``; pixels equal to ``ignore_index`` are left out of the loss and the metrics."""

    def __init__(self, dice_weight: float = 0.0, ignore_index: int = 255) -> None:
        if dice_weight < 0:
            raise ConfigError(f"dice_weight: must be >= 0, got {dice_weight}")
        self.dice_weight, self.ignore_index = float(dice_weight), int(ignore_index)

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["pixels"]).float()  # (B, K, H, W)
        masks = batch["masks"].long()  # (B, H, W)
        valid = masks != self.ignore_index  # (B, H, W)
        _check_masks(logits, masks, valid)
        count = int(valid.sum())
        if count:
            ce = F.cross_entropy(logits, masks, ignore_index=self.ignore_index)
        else:
            ce = logits.sum() * 0.0  # nothing scored: a zero loss that still backpropagates, not 0/0
        loss = ce
        metrics: dict[str, torch.Tensor] = {}
        if self.dice_weight > 0:
            dice = soft_dice_loss(logits, masks, valid)
            loss = ce + self.dice_weight * dice
            metrics["cross_entropy"], metrics["dice_loss"] = ce, dice
        right = (logits.argmax(dim=1) == masks) & valid
        metrics["pixel_accuracy"] = right.sum().float() / max(count, 1)
        metrics["loss"] = loss
        metrics = {k: v.detach() for k, v in metrics.items()}
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=int(masks.shape[0]))
