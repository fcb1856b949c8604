"""Sequence classification and regression: (model, batch) -> loss and metrics.

For a model returning logits z (B, K) (e.g. ``models.heads.SequenceClassifier``):

    single_label  L = -(1/sum_b w_{y_b}) sum_b w_{y_b} log softmax(z_b)[y_b]     labels (B,) long
    multi_label   L = mean_{b,k} w_k BCE(sigmoid(z_bk), y_bk)                     labels (B, K) in {0, 1}
    regression    L = mean_{b,k} (z_bk - y_bk)^2                                  labels (B,) or (B, K) float

``w`` are optional class weights (for imbalanced data, e.g. inverse
frequencies from ``data.task_data.class_weights``); with weights, the
single-label loss is the weighted mean, as ``torch.nn.functional.cross_entropy``
computes it. ``problem`` defaults to the model's ``problem`` attribute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.objectives.base import ObjectiveOutput

PROBLEMS = ("single_label", "multi_label", "regression")
MODEL_INPUTS = ("attention_mask", "token_type_ids")


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword inputs a task head takes from a batch (only those present)."""
    return {k: batch[k] for k in MODEL_INPUTS if k in batch}


def _weights(class_weights: Sequence[float] | torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    if class_weights is None:
        return None
    return torch.as_tensor(class_weights, dtype=torch.float32, device=like.device)


class SequenceClassification:
    """Cross-entropy, BCE-with-logits or MSE on per-sequence logits; ``labels`` in the batch.

    Metrics: ``loss`` and ``accuracy`` (single-label), ``label_accuracy`` (multi-label: share of
    correct (sequence, label) decisions at logit 0, i.e. probability 0.5), ``mse`` and ``mae``
    (regression). weight = sequences in the batch.
    """

    def __init__(self, problem: str | None = None, class_weights: Sequence[float] | torch.Tensor | None = None
                 ) -> None:
        if problem is not None and problem not in PROBLEMS:
            raise ValueError(f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}")
        if class_weights is not None and problem == "regression":
            raise ValueError("class weights apply to classification, not regression")
        self.problem, self.class_weights = problem, class_weights

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["input_ids"], **model_inputs(batch)).float()  # (B, K)
        labels = batch["labels"]
        problem = self.problem or getattr(model, "problem", "single_label")
        weights = _weights(self.class_weights, logits)
        metrics: dict[str, torch.Tensor] = {}
        if problem == "single_label":
            loss = F.cross_entropy(logits, labels, weight=weights)
            metrics["accuracy"] = (logits.argmax(-1) == labels).float().mean()
        elif problem == "multi_label":
            target = labels.float()
            loss = F.binary_cross_entropy_with_logits(logits, target, weight=weights)
            metrics["label_accuracy"] = ((logits > 0) == target.bool()).float().mean()
        elif problem == "regression":
            pred = logits.squeeze(-1) if labels.dim() == 1 else logits  # (B,) for one target
            target = labels.float()
            loss = F.mse_loss(pred, target)
            metrics["mse"] = loss
            metrics["mae"] = (pred - target).abs().mean()
        else:
            raise ValueError(f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}")
        metrics = {k: v.detach() for k, v in metrics.items()}
        metrics["loss"] = loss.detach()
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=int(labels.shape[0]))
