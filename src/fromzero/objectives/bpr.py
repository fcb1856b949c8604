"""Bayesian personalised ranking: (model, batch) -> -log sigmoid(s_pos - s_neg), averaged over negatives.

    L = (1/(B N)) sum_b sum_n -log sigmoid(s(u_b, i_b) - s(u_b, j_bn))  +  reg (1/B) sum_b ||theta_b||^2

(Rendle et al., 2009, https://arxiv.org/abs/1205.2618). ``s`` is ``model.score_items(batch, items)`` (MF,
the two-tower hybrid, which also reads the batch's history); ``j_bn`` are N sampled items user b has not
interacted with in training; ``theta_b`` are the embedding rows row b uses (``model.embedding_l2``).
Batches come from ``data.recsys_batches.PairBatches``: {"user" (B,), "item" (B,), "negative" (B, N),
"history" (B, L), "history_rating" (B, L)}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.objectives.base import ObjectiveOutput
from fromzero.objectives.rating_regression import embedding_penalty


class BPR:
    """BPR loss with an optional L2 penalty ``reg`` on the used embeddings.

    Metrics: ``loss`` (with the penalty) and ``auc``: the share of (positive, negative) pairs the model orders
    correctly (s_pos > s_neg), the batch's sampled AUC. weight = positives in the batch.
    """

    def __init__(self, reg: float = 0.0) -> None:
        if reg < 0:
            raise ValueError(f"reg must be >= 0, got {reg}")
        self.reg = reg

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        user, item, negative = batch["user"], batch["item"], batch["negative"]  # (B,), (B,), (B, N)
        # one call for positive and negatives: one item-tower pass (and one id-dropout draw) per step
        scores = model.score_items(batch, torch.cat([item[:, None], negative], dim=1)).float()  # (B, 1 + N)
        margin = scores[:, :1] - scores[:, 1:]  # (B, N)
        loss = -F.logsigmoid(margin).mean()
        loss = loss + embedding_penalty(model, user, torch.cat([item[:, None], negative], dim=1), self.reg)
        metrics = {"loss": loss.detach(), "auc": (margin > 0).float().mean().detach()}
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=int(user.shape[0]))
