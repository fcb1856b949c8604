"""Denoising autoencoder loss: rebuild the original sequence from its corrupted copy through one vector z.

For a clean sequence x = x_1..x_n, its corruption x~ = C(x) (``data/denoising_text_batches.py``: word
dropout, local shuffle, masking) and the bottleneck z = Enc(x~) (B, d_z):

    L = -(1 / N) sum_rows sum_{t=1..n+1} log p(y_t | y_<t, z),     y = x_1..x_n, eos

the decoder teacher-forced on y shifted right (decoder_start first); N = target tokens in the batch.

Metrics (all over the same N target tokens):
    token_accuracy     argmax p(y_t | y_<t, z) == y_t (teacher-forced)
    copy_accuracy      the corrupted input copied through, x~ + eos, position by position == y_t:
                       what a model that returns its input scores; the autoencoder must beat it
    sequence_accuracy  rows whose every target token is predicted right
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.denoising_text_batches import DenoisingTextConfig
from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives.base import ObjectiveOutput


def copy_accuracy(input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of scored targets (labels != -100) equal to the input token at the same position.
    input_ids, labels (B, T) with the same T (the batches pad both to seq_len + 1)."""
    scored = labels != IGNORE_INDEX
    return ((input_ids == labels) & scored).sum() / scored.sum().clamp(min=1)


class DenoisingAutoencoder:
    """Cross-entropy of ``model(input_ids, attention_mask=, decoder_input_ids=) -> logits (B, T, V)`` against
    ``labels``; weight = target tokens. ``cfg`` (the noise) is accepted for a uniform construction."""

    def __init__(self, cfg: DenoisingTextConfig | None = None) -> None:
        self.cfg = cfg

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                       decoder_input_ids=batch["decoder_input_ids"])  # (B, T, V)
        labels = batch["labels"]  # (B, T)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)
        with torch.no_grad():
            scored = labels != IGNORE_INDEX
            n = int(scored.sum())
            right = (logits.argmax(-1) == labels) | ~scored  # (B, T): unscored positions count as right
            metrics = {"loss": loss.detach(), "token_accuracy": (right & scored).sum() / max(n, 1),
                       "copy_accuracy": copy_accuracy(batch["input_ids"], labels),
                       "sequence_accuracy": right.all(dim=1).float().mean()}
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=n)
