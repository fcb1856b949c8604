"""Image classification: (model, batch) -> cross-entropy, in its mixup / cutmix form when the batch is mixed.

For logits z = model(pixels) (B, K) and labels y (B,):

    plain        L = (1/B) sum_b CE(z_b, y_b)
    mixed        L = (1/B) sum_b [ lam_b CE(z_b, y_b) + (1 - lam_b) CE(z_b, y'_b) ]

where a mixed batch carries ``labels_b`` (y') and ``mix_lambda`` (lam, the weight of
``labels``): mixup (Zhang et al., 2017, https://arxiv.org/abs/1710.09412) blends two
images with weight lam; cutmix (Yun et al., 2019, https://arxiv.org/abs/1905.04899)
pastes a box of one into the other, lam = the kept area's share. Either way the loss is
the same weighted sum of two cross-entropies, which equals cross-entropy against the
mixed one-hot target. With label smoothing eps, CE uses the target (1 - eps) onehot(y) + eps / K
(Szegedy et al., 2015, https://arxiv.org/abs/1512.00567).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.objectives.base import ObjectiveOutput


class ImageClassification:
    """Cross-entropy on ``model(batch["pixels"])`` against ``batch["labels"]`` (mixed with ``labels_b`` when the
    batch has ``mix_lambda``). Metrics: ``loss``, ``accuracy`` (argmax vs ``labels``). weight = images."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, reduction="none", label_smoothing=self.label_smoothing)  # (B,)

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["pixels"]).float()  # (B, K)
        labels = batch["labels"]
        if "mix_lambda" in batch:
            lam = batch["mix_lambda"].to(logits.dtype).expand(labels.shape[0])  # (B,); a scalar lam broadcasts
            loss = (lam * self._ce(logits, labels) + (1.0 - lam) * self._ce(logits, batch["labels_b"])).mean()
        else:
            loss = self._ce(logits, labels).mean()
        accuracy = (logits.argmax(-1) == labels).float().mean()
        return ObjectiveOutput(loss=loss, metrics={"loss": loss.detach(), "accuracy": accuracy.detach()},
                               weight=int(labels.shape[0]))
