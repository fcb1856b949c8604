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
    """Cross-entropy over target tokens; metrics ``loss``, ``nll`` and (in evaluation) teacher-forced
    ``token_accuracy``."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                       decoder_input_ids=batch["decoder_input_ids"])  # (B, T, V)
        labels = batch["labels"]  # (B, T), -100 on padding
        scored = labels != IGNORE_INDEX
        n = int(scored.sum())
        z, y = logits[scored].float(), labels[scored]  # (N, V), (N,): real target positions only
        logp = F.log_softmax(z, dim=-1)  # once, for both the loss and the plain nll
        nll = -logp.gather(1, y[:, None]).mean()
        eps = self.label_smoothing
        loss = nll if eps == 0 else (1 - eps) * nll - eps * logp.mean()
        metrics = {"loss": loss.detach(), "nll": nll.detach()}
        if not model.training:  # the argmax over the vocabulary costs ~5% of a training step: evaluation only
            with torch.no_grad():
                metrics["token_accuracy"] = (z.argmax(-1) == y).sum() / max(n, 1)
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=n)
