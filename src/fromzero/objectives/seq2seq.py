"""Sequence-to-sequence fine-tuning loss: teacher-forced token cross-entropy on the targets.

For an encoder-decoder model (``fromzero.models.T5``) and a batch from
``data.seq2seq_data``:

    z = model(x, attention_mask, decoder_input_ids = [start, y_1, ..., y_{T-1}])     (B, T, V)
    L = -(1 / N) sum_{b, t : y_bt != -100} log softmax(z_bt)[y_bt]                    N = scored tokens

i.e. the mean over real target tokens (eos included, padding excluded), the
loss T5 fine-tunes with. weight = N, so micro-batches of different target
lengths average per token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives.base import ObjectiveOutput


class Seq2SeqLM:
    """Cross-entropy over target tokens; metrics ``loss`` and teacher-forced ``token_accuracy``."""

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                       decoder_input_ids=batch["decoder_input_ids"])  # (B, T, V)
        labels = batch["labels"]  # (B, T), -100 on padding
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)
        with torch.no_grad():
            scored = labels != IGNORE_INDEX
            n = int(scored.sum())
            correct = ((logits.argmax(-1) == labels) & scored).sum()
        return ObjectiveOutput(loss=loss, metrics={"loss": loss.detach(), "token_accuracy": correct / max(n, 1)},
                               weight=n)
