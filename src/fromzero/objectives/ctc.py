"""CTC: speech (or any frame sequence) to a shorter label sequence without an alignment.

For a model giving per-frame log-probabilities y (T', V) over the labels plus a blank (id ``blank``), the
loss of one utterance is the negative log of the total probability of all paths that collapse to its
labels l (repeats merged, then blanks dropped; see ``nn/ctc.py``), computed by the forward algorithm::

    L_b = -log sum_{pi : B(pi) = l_b} prod_t y[t, pi_t]
    L   = (1/B) sum_b L_b / |l_b|                      (torch's reduction="mean": per label, then per utterance)

Batch: ``features`` (B, T, F), ``feature_lengths`` (B,), ``labels`` (B, S) padded (any pad value past each
length), ``label_lengths`` (B,). The model is called as ``model(features, feature_lengths)`` and returns
logits (B, T', V), or ``(logits, output_lengths)`` when it changes the frame rate (a strided conv front end);
without output lengths T' must equal T. An utterance with fewer output frames than its labels need
(|l| plus one per adjacent repeat) has probability 0: with ``zero_infinity`` (the default) its loss and
gradient are zeroed instead of making the batch infinite, and the metric ``infeasible`` counts them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.objectives.base import ObjectiveOutput


def frames_needed(labels: torch.Tensor, label_lengths: torch.Tensor) -> torch.Tensor:
    """The fewest frames a CTC path for each row needs: its length plus one blank per adjacent repeat. (B,)"""
    positions = torch.arange(1, labels.shape[1], device=labels.device)[None, :]  # (1, S-1)
    repeats = (labels[:, 1:] == labels[:, :-1]) & (positions < label_lengths[:, None])  # (B, S-1)
    return label_lengths + repeats.sum(dim=1)


class CTCObjective:
    """``F.ctc_loss`` on ``log_softmax`` (float32) of the model's logits. Metrics: ``loss``, ``infeasible``;
    weight = utterances in the batch."""

    def __init__(self, blank: int = 0, zero_infinity: bool = True) -> None:
        self.blank = blank
        self.zero_infinity = zero_infinity

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        output = model(batch["features"], batch["feature_lengths"])
        if isinstance(output, tuple):
            logits, output_lengths = output  # (B, T', V), (B,)
        else:
            logits, output_lengths = output, batch["feature_lengths"]
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T', B, V), as ctc_loss takes it
        labels, label_lengths = batch["labels"], batch["label_lengths"]
        per_utterance = F.ctc_loss(log_probs, labels, output_lengths, label_lengths, blank=self.blank,
                                   reduction="none", zero_infinity=self.zero_infinity)  # (B,) -log p(l_b | x_b)
        infeasible = output_lengths.to(label_lengths.device) < frames_needed(labels, label_lengths)
        loss = (per_utterance / label_lengths.clamp(min=1).to(per_utterance.dtype)).mean()
        metrics = {"loss": loss.detach(), "infeasible": infeasible.sum().detach().float()}
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=int(labels.shape[0]))
