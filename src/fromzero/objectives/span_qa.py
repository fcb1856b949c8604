"""Extractive QA: cross-entropy on the answer's start and end token positions.

For logits z (B, T, 2) (``models.heads.SpanQA``) and gold positions s, e (B,):

    L = (CE(z[..., 0], s) + CE(z[..., 1], e)) / 2

as in BERT (Devlin et al. 2018, section 4.2) and Hugging Face. A position of
-100 marks a question whose answer is not inside the (truncated) context; such
rows are skipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives.base import ObjectiveOutput
from fromzero.objectives.classification import model_inputs


class SpanQA:
    """Start/end cross-entropy; batch keys ``start_positions``, ``end_positions`` (B,).

    Metrics: ``loss``, ``start_accuracy``, ``end_accuracy``, ``span_accuracy`` (both right, per
    argmax of each). weight = answerable rows.
    """

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["input_ids"], **model_inputs(batch)).float()  # (B, T, 2)
        start, end = batch["start_positions"], batch["end_positions"]
        scored = (start != IGNORE_INDEX) & (end != IGNORE_INDEX)
        n = int(scored.sum())
        if n:
            s_logits, e_logits = logits[scored, :, 0], logits[scored, :, 1]  # (N, T)
            loss = (F.cross_entropy(s_logits, start[scored]) + F.cross_entropy(e_logits, end[scored])) / 2
        else:
            loss = logits.sum() * 0.0
        with torch.no_grad():
            s_ok = logits[scored, :, 0].argmax(-1) == start[scored]
            e_ok = logits[scored, :, 1].argmax(-1) == end[scored]
            metrics = {"loss": loss.detach(), "start_accuracy": s_ok.float().sum() / max(n, 1),
                       "end_accuracy": e_ok.float().sum() / max(n, 1),
                       "span_accuracy": (s_ok & e_ok).float().sum() / max(n, 1)}
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=n)
