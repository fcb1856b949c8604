"""T5 span corruption loss: cross-entropy over the dropped spans after their sentinels.

Raffel et al. 2019, https://arxiv.org/abs/1910.10683 (section 3.1.4): L = -(1/N) sum_t log p(y_t | y_<t, inputs)
over the N target tokens (the decoder is teacher-forced on the targets shifted right, starting with the pad
id as in T5). Batches come from :class:`fromzero.data.span_corruption_batches.SpanCorruptionBatches`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.data.span_corruption_batches import SpanCorruptionConfig
from fromzero.objectives.base import ObjectiveOutput


class SpanCorruption:
    """Cross-entropy over the targets of an encoder-decoder model; weight = number of target tokens.

    Metrics: loss, token_accuracy (teacher-forced, over non-pad targets, sentinels and eos included)
    and, when the batch has ``target_span_ids`` (as :class:`SpanCorruptionBatches` gives),
    span_token_accuracy (over the dropped tokens only) and span_accuracy (the share of noise spans
    whose tokens are all predicted exactly). ``cfg`` is accepted for a uniform construction.
    """

    def __init__(self, cfg: SpanCorruptionConfig | None = None) -> None:
        self.cfg = cfg

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                       decoder_input_ids=batch["decoder_input_ids"],
                       decoder_attention_mask=batch.get("decoder_attention_mask"))  # (B, T_dec, V)
        labels = batch["labels"]
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)
        with torch.no_grad():
            scored = labels != IGNORE_INDEX
            n = int(scored.sum())
            correct = (logits.argmax(-1) == labels) & scored
            metrics = {"loss": loss.detach(), "token_accuracy": correct.sum() / max(n, 1)}
            if "target_span_ids" in batch:
                metrics["span_accuracy"] = span_accuracy(batch["target_span_ids"], correct)
                inside = batch["target_span_ids"] > 0  # the dropped text itself: no sentinels, no eos
                metrics["span_token_accuracy"] = (correct & inside).sum() / inside.sum().clamp(min=1)
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=n)


def span_accuracy(target_span_ids: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """Share of spans all of whose tokens are ``correct``; target_span_ids (B, T) > 0 inside span i."""
    b, t = target_span_ids.shape
    inside = target_span_ids > 0
    span = (target_span_ids + torch.arange(b, device=correct.device)[:, None] * (t + 1))[inside]  # global ids
    size = torch.zeros(b * (t + 1), device=correct.device).index_add_(0, span, torch.ones_like(span, dtype=torch.float))
    wrong = torch.zeros_like(size).index_add_(0, span, (~correct[inside]).float())
    present = size > 0
    if not present.any():
        return torch.tensor(0.0, device=correct.device)
    return (wrong[present] == 0).float().mean()
