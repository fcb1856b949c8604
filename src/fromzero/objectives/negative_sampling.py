"""Skip-gram / CBOW with negative sampling (SGNS): (Word2Vec model, batch) -> loss.

For one (hidden h, positive word o) pair with K sampled negative words k:

    l(h, o) = -log sigmoid(u_o . h) - sum_{k=1..K, k != o} log sigmoid(-u_k . h)

    dl/dh   = (sigmoid(u_o . h) - 1) u_o + sum_k sigmoid(u_k . h) u_k
    dl/du_o = (sigmoid(u_o . h) - 1) h          dl/du_k = sigmoid(u_k . h) h

A negative that happens to be the positive word itself is skipped, as word2vec.c does.
skip-gram: h = v_center and every context word of the row is a positive o, each pair with its own K
negatives (``negatives[b, j]`` for context slot j); the loss is the mean over the batch's pairs.
CBOW: h = mean of the context words' input vectors, o = the center word, negatives ``negatives[b, 0]``; the
loss is the mean over rows with at least one context word, and dl/dv_context_j = dl/dh / m for each of the
row's m context words.

The loss is a mean over n pairs, so plain SGD with rate lr moves each pair's vectors by lr / n times its
gradient: word2vec.c's per-pair rate 0.025 is lr = 0.025 * n (n ~ B (W + 1) for skip-gram's reduced windows).

Batches come from ``data/word2vec_batches.py``: ``center`` (B,), ``context`` (B, C), ``context_mask`` (B, C)
bool, ``negatives`` (B, C, K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.objectives.base import ObjectiveOutput


def sgns_pair_losses(scores: torch.Tensor, use_negative: torch.Tensor) -> torch.Tensor:
    """l(h, o) of N pairs from their scores (N, 1 + K) = [u_o . h, u_1 . h .. u_K . h] and use_negative (N, K)
    bool (False: a skipped negative) -> (N,)."""
    neg = F.logsigmoid(-scores[:, 1:]) * use_negative  # (N, K)
    return -F.logsigmoid(scores[:, 0]) - neg.sum(-1)


def scored_pairs(mode: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The N scored pairs of a batch: (row of each (N,), positive word (N,), its negatives (N, K))."""
    center, context, mask = batch["center"], batch["context"], batch["context_mask"].bool()  # (B,) (B,C) (B,C)
    negatives = batch["negatives"]  # (B, C, K)
    if mode == "skipgram":
        rows, slots = mask.nonzero(as_tuple=True)  # (N,) each: every used context slot is one pair
        return rows, context[rows, slots], negatives[rows, slots]
    rows = mask.any(1).nonzero(as_tuple=True)[0]  # (N,): the rows with context predict their center
    return rows, center[rows], negatives[rows, 0]


class NegativeSampling:
    """The SGNS loss of a :class:`~fromzero.models.word2vec.Word2Vec` in either mode (read from the model).

    Metrics: ``loss`` and ``pair_accuracy``, the share of scored terms on the right side (positives scored
    sigmoid > 1/2, negatives < 1/2). weight = pairs scored (skip-gram) or rows with context (CBOW).
    """

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        h = model(batch["center"], batch["context"], batch["context_mask"].bool()).float()  # (B, D)
        rows, positive, negatives = scored_pairs(model.mode, batch)  # (N,) (N,) (N, K)
        targets = torch.cat([positive[:, None], negatives], 1)  # (N, 1 + K)
        use_negative = negatives != positive[:, None]  # (N, K)
        u = model.output_vectors(targets).float()  # (N, 1 + K, D)
        scores = torch.bmm(u, h[rows][:, :, None])[..., 0]  # (N, 1 + K): u_o . h, then u_k . h
        n = len(rows)
        loss = sgns_pair_losses(scores, use_negative).sum() / max(n, 1)
        with torch.no_grad():
            right = (scores[:, 0] > 0).sum() + ((scores[:, 1:] < 0) & use_negative).sum()
            right = right.float() / max(n + int(use_negative.sum()), 1)
        return ObjectiveOutput(loss=loss, metrics={"loss": loss.detach(), "pair_accuracy": right}, weight=n)
