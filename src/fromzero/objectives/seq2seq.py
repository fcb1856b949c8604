"""Sequence-to-sequence fine-tuning loss: teacher-forced token cross-entropy on the targets.

For an encoder-decoder model (``fromzero.models.T5``) and a batch from
``data.seq2seq_data``:

    z = model(x, attention_mask, decoder_input_ids = [start, y_1, ..., y_{T-1}])     (B, T, V)
    L = -(1 / N) sum_{b, t : y_bt != -100} log softmax(z_bt)[y_bt]                    N = scored tokens

i.e. the mean over real target tokens (eos included, padding excluded), the
loss T5 fine-tunes with. weight = N, so micro-batches of different target
lengths average per token.

With ``label_smoothing`` eps > 0 (Szegedy et al. 2016; the Transformer's 0.1 for translation) each target
is the mixture (1 - eps) one-hot + eps uniform over the vocabulary, so the trained loss is
(1 - eps) NLL + eps * mean_v(-log p_v); the metric ``nll`` keeps the plain cross-entropy beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives.base import ObjectiveOutput


class Seq2SeqLM:
    """Cross-entropy over target tokens; metrics ``loss``, ``nll`` and teacher-forced ``token_accuracy``."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                       decoder_input_ids=batch["decoder_input_ids"])  # (B, T, V)
        labels = batch["labels"]  # (B, T), -100 on padding
        flat, target = logits.flatten(0, 1).float(), labels.flatten()
        loss = F.cross_entropy(flat, target, ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            nll = F.cross_entropy(flat, target, ignore_index=IGNORE_INDEX) if self.label_smoothing else loss
            scored = labels != IGNORE_INDEX
            n = int(scored.sum())
            correct = ((logits.argmax(-1) == labels) & scored).sum()
        metrics = {"loss": loss.detach(), "nll": nll.detach(), "token_accuracy": correct / max(n, 1)}
        return ObjectiveOutput(loss=loss, metrics=metrics,
                               weight=n)
