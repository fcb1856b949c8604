"""Next-item prediction (SASRec): full-softmax cross-entropy over every catalogue item.

    L = -(1/N) sum_{(b, t) scored} log softmax_i(h_{b,t} . E_item[i])[target_{b,t}]     N = scored positions

Batches from ``SequenceBatches(mode="next")``: ``history`` (B, L) LEFT-padded inputs and ``target`` (B, L),
the next item at each position, -100 where nothing is predicted. A full softmax rather than sampled
negatives: with ~9k items the (N, I) logits are cheap, and sampled losses bias the ranking. The model
needs ``model(history) -> hidden (B, L, D)`` and ``model.item_logits(hidden (N, D)) -> (N, I)``;
only the scored positions are projected onto the catalogue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives.base import ObjectiveOutput


def item_cross_entropy(model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
    """Mean cross-entropy over all items at the positions where ``batch["target"]`` is not -100.

    metrics: ``loss``, and in evaluation (``model.training`` off) ``accuracy`` (top-1 hits / scored positions):
    the argmax over (N, I) logits costs as much as the softmax, so training steps skip it. weight = scored
    positions.
    A batch with nothing scored gives a zero loss that still depends on the model (so backward works).
    """
    hidden = model(batch["history"])  # (B, L, D)
    target = batch["target"]  # (B, L)
    scored = target != IGNORE_INDEX
    labels = target[scored]  # (N,)
    logits = model.item_logits(hidden[scored]).float()  # (N, I)
    n = int(labels.numel())
    loss = F.cross_entropy(logits, labels) if n else hidden.sum() * 0.0
    metrics = {"loss": loss.detach()}
    if not model.training:
        with torch.no_grad():
            metrics["accuracy"] = (logits.argmax(-1) == labels).float().sum() / max(n, 1)
    return ObjectiveOutput(loss=loss, metrics=metrics, weight=n)


class NextItem:
    """SASRec's objective: cross-entropy of the next item at every non-ignored position."""

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        return item_cross_entropy(model, batch)
