"""Causal language modelling: predict token t+1 from tokens <= t.

    L = -(1/N) sum_t log p(x_{t+1} | x_{<=t})      over the N scored positions

Perplexity is exp(L). Labels of -100 (and positions where ``loss_mask`` is
False) are not scored, e.g. padding or a prompt in supervised fine-tuning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives.base import ObjectiveOutput


class CausalLM:
    """Next-token cross-entropy. Batch: ``input_ids`` (B, T), ``labels`` (B, T), optional ``loss_mask``."""

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask"))  # (B, T, V)
        labels = batch["labels"]
        if "loss_mask" in batch:
            labels = labels.masked_fill(~batch["loss_mask"].bool(), IGNORE_INDEX)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)
        with torch.no_grad():
            scored = labels != IGNORE_INDEX
            n = int(scored.sum())
            correct = (logits.argmax(-1) == labels) & scored
            accuracy = correct.sum() / max(n, 1)
        return ObjectiveOutput(loss=loss, metrics={"loss": loss.detach(), "accuracy": accuracy}, weight=n)
