"""BERT pretraining loss: masked language modelling (MLM) + next-sentence prediction (NSP).

Devlin et al. 2018, https://arxiv.org/abs/1810.04805:

    L = L_mlm + L_nsp
    L_mlm = -(1/N) sum_{i masked} log p(x_i | x_corrupted)       N = masked tokens
    L_nsp = -(1/B) sum_b log p(is_next_b | [CLS]_b)

The batches (masking, NSP pairs, whole words) are built by
:class:`fromzero.data.masked_lm_batches.MaskedLMBatches`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.data.masked_lm_batches import MaskedLMConfig
from fromzero.objectives.base import ObjectiveOutput


class MaskedLM:
    """MLM (+ NSP when the batch has ``nsp_labels``) loss for a model with BERT's heads.

    The MLM head runs only on the masked positions (hidden[labels != -100], about 15% of tokens), which
    saves most of the (N, V) vocabulary projection. weight = number of masked tokens (so NSP metrics,
    averaged over micro-batches, are weighted by them too). ``cfg`` is accepted for a uniform construction.
    """

    def __init__(self, cfg: MaskedLMConfig | None = None) -> None:
        self.cfg = cfg

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        hidden = model(batch["input_ids"], token_type_ids=batch.get("token_type_ids"),
                       attention_mask=batch.get("attention_mask"))  # (B, T, C)
        labels = batch["labels"]
        scored = labels != IGNORE_INDEX
        targets = labels[scored]  # (N,)
        logits = model.mlm_logits(hidden[scored])  # (N, V)
        n = int(targets.numel())
        mlm_loss = F.cross_entropy(logits.float(), targets) if n else hidden.sum() * 0.0
        loss = mlm_loss
        metrics = {"mlm_loss": mlm_loss.detach()}
        with torch.no_grad():
            metrics["mlm_accuracy"] = (logits.argmax(-1) == targets).float().sum() / max(n, 1)
        if "nsp_labels" in batch:
            nsp_logits = model.nsp_logits(model.pool(hidden))  # (B, 2)
            nsp_loss = F.cross_entropy(nsp_logits.float(), batch["nsp_labels"])
            loss = loss + nsp_loss
            metrics["nsp_loss"] = nsp_loss.detach()
            metrics["nsp_accuracy"] = (nsp_logits.argmax(-1) == batch["nsp_labels"]).float().mean().detach()
        metrics["loss"] = loss.detach()
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=n)
