"""Token classification (BIO tagging): per-token cross-entropy, positions labelled -100 skipped.

For logits z (B, T, K) and labels y (B, T):

    L = -(1/sum_{(b,t) scored} w_{y_bt}) sum_{(b,t) scored} w_{y_bt} log softmax(z_bt)[y_bt]

Scored positions are those with y != -100: the encoder marks padding,
special tokens and the non-first sub-tokens of a word that way, so each
word is scored once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives.base import ObjectiveOutput
from fromzero.objectives.classification import model_inputs


class TokenClassification:
    """Cross-entropy over scored tokens; metrics ``loss``, ``token_accuracy``; weight = scored tokens."""

    def __init__(self, class_weights: Sequence[float] | torch.Tensor | None = None) -> None:
        self.class_weights = class_weights

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["input_ids"], **model_inputs(batch)).float()  # (B, T, K)
        labels = batch["labels"]  # (B, T)
        weights = None
        if self.class_weights is not None:
            weights = torch.as_tensor(self.class_weights, dtype=torch.float32, device=logits.device)
        scored = labels != IGNORE_INDEX
        n = int(scored.sum())
        if n:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), weight=weights, ignore_index=IGNORE_INDEX)
        else:
            loss = logits.sum() * 0.0  # keeps the graph: a batch of only padding contributes nothing
        with torch.no_grad():
            correct = ((logits.argmax(-1) == labels) & scored).sum()
            accuracy = correct.float() / max(n, 1)
        return ObjectiveOutput(loss=loss, metrics={"loss": loss.detach(), "token_accuracy": accuracy},
                               weight=n)
