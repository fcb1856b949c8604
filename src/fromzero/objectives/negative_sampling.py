"""Skip-gram / CBOW with negative sampling (SGNS): (Word2Vec model, batch) -> loss.

For one (hidden h, positive word o) pair with K sampled negative words k:

    l(h, o) = -log sigmoid(u_o . h) - sum_{k=1..K} log sigmoid(-u_k . h)

    dl/dh   = (sigmoid(u_o . h) - 1) u_o + sum_k sigmoid(u_k . h) u_k
    dl/du_o = (sigmoid(u_o . h) - 1) h          dl/du_k = sigmoid(u_k . h) h

skip-gram: h = v_center and every context word of the row is a positive o (one pair each; the row's K
negatives serve all of its pairs); the loss is the mean over the batch's pairs.
CBOW: h = mean of the context words' input vectors, o = the center word; the loss is the mean over rows
with at least one context word, and dl/dv_context_j = dl/dh / m for each of the row's m context words.

Batches come from ``data/word2vec_batches.py``: ``center`` (B,), ``context`` (B, C), ``context_mask`` (B, C)
bool, ``negatives`` (B, K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.objectives.base import ObjectiveOutput


def sgns_pair_losses(h: torch.Tensor, u_pos: torch.Tensor, u_neg: torch.Tensor) -> torch.Tensor:
    """l(h, o) of every (row, positive) pair: h (B, D), u_pos (B, P, D), u_neg (B, K, D) -> (B, P)."""
    pos = torch.einsum("bpd,bd->bp", u_pos, h)  # (B, P): u_o . h
    neg = torch.einsum("bkd,bd->bk", u_neg, h)  # (B, K): u_k . h
    return -F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1, keepdim=True)  # (B, P)


class NegativeSampling:
    """The SGNS loss of a :class:`~fromzero.models.word2vec.Word2Vec` in either mode (read from the model).

    Metrics: ``loss`` and ``pair_accuracy``, the share of positives scored sigmoid > 1/2 and negatives < 1/2.
    weight = pairs scored (skip-gram) or rows with context (CBOW).
    """

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        center, context, mask = batch["center"], batch["context"], batch["context_mask"].bool()  # (B,) (B,C) (B,C)
        h = model(center, context, mask).float()  # (B, D)
        u_neg = model.output_vectors(batch["negatives"]).float()  # (B, K, D)
        if model.mode == "skipgram":
            positives, scored = context, mask  # (B, C): every context word of a row is one pair
        else:
            positives, scored = center[:, None], mask.any(1, keepdim=True)  # (B, 1): the center, if any context
        losses = sgns_pair_losses(h, model.output_vectors(positives).float(), u_neg)  # (B, P)
        n = int(scored.sum())
        loss = (losses * scored).sum() / max(n, 1)
        with torch.no_grad():
            pos = torch.einsum("bpd,bd->bp", model.output_vectors(positives).float(), h) > 0  # (B, P)
            neg = (torch.einsum("bkd,bd->bk", u_neg, h) < 0).float().mean(-1, keepdim=True)  # (B, 1)
            k = u_neg.shape[1]
            right = ((pos.float() + k * neg) / (1 + k) * scored).sum() / max(n, 1)
        return ObjectiveOutput(loss=loss, metrics={"loss": loss.detach(), "pair_accuracy": right}, weight=n)
