"""Full-ranking evaluation of recommenders: every catalogue item is ranked, items the user has seen are removed.

Sampled-negative evaluation (rank the target among 100 random items) is known to mislead (Krichene &
Rendle, 2020, "On Sampled Metrics for Item Recommendation", https://arxiv.org/abs/1912.00384), so
the target is ranked against the whole catalogue less the user's seen items.

One tie rule everywhere: higher score first, then lower item index. So ``top_k`` and ``target_ranks``
agree exactly (HR@k is 1 exactly when the target is in ``top_k``), and a model that scores everything
equally (an untrained one) ranks items by index instead of getting a lucky middle rank.

    rank     0-based: #unseen items scoring higher + #unseen items tied with a lower index
    HR@k     1 if rank < k
    NDCG@k   1 / log2(rank + 2) if rank < k, else 0   (one relevant item, so the ideal DCG is 1)
    MRR      1 / (rank + 1), over the full ranking (not cut at k)
    coverage distinct items in all users' top-k lists / catalogue size
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def exclude_seen(scores: Tensor, seen: Tensor) -> Tensor:
    """scores (B, I), seen bool (B, I) -> a copy of scores with seen items at -inf."""
    if scores.shape != seen.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and seen {tuple(seen.shape)} differ in shape")
    return scores.masked_fill(seen, float("-inf"))


def _ranked(scores: Tensor, seen: Tensor) -> Tensor:
    """(B, I) item indices in ranking order: unseen first, then score descending, then index ascending."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices  # ties keep index order
    # a second stable sort on "seen" puts every seen item last, even when an unseen item scores -inf itself
    seen_in_order = torch.gather(seen, 1, order).to(torch.uint8)
    return torch.gather(order, 1, torch.sort(seen_in_order, dim=1, stable=True).indices)


def top_k(scores: Tensor, seen: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k best unseen items per row: (values (B, k), indices (B, k)); ties go to the lower item index.

    Raises ValueError if a row has fewer than k unseen items (the caller must lower k)."""
    masked = exclude_seen(scores, seen)
    unseen = (~seen).sum(dim=1)  # (B,)
    if k < 1 or bool((unseen < k).any()):
        raise ValueError(f"top_k: k={k} but a row has only {int(unseen.min())} unseen items; use 1 <= k <= that")
    indices = _ranked(masked, seen)[:, :k]  # (B, k)
    return torch.gather(masked, 1, indices), indices


def target_ranks(scores: Tensor, seen: Tensor, targets: Tensor) -> Tensor:
    """scores (B, I), seen bool (B, I), targets (B,) -> (B,) 0-based rank of each target among unseen items.

    A target the user has already seen is a ValueError: the split leaked the held-out item into the history."""
    if bool(torch.isnan(scores).any()):
        raise ValueError("target_ranks: scores contain NaN; a NaN target would rank first")
    rows = torch.arange(scores.shape[0], device=scores.device)
    if bool(seen[rows, targets].any()):
        bad = int(torch.nonzero(seen[rows, targets])[0, 0])
        raise ValueError(f"target item {int(targets[bad])} of row {bad} is marked seen; the evaluation protocol "
                         f"must not count the held-out item as seen")
    target_score = scores[rows, targets].unsqueeze(1)  # (B, 1)
    index = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0)  # (1, I)
    ahead = (scores > target_score) | ((scores == target_score) & (index < targets.unsqueeze(1)))  # (B, I)
    return (ahead & ~seen).sum(dim=1)


class RankingAccumulator:
    """HR@k, NDCG@k, MRR and coverage@k over users added batch by batch (full ranking, seen items removed)."""

    def __init__(self, n_items: int, k: int = 10) -> None:
        if n_items < 1 or k < 1:
            raise ValueError(f"RankingAccumulator needs n_items >= 1 and k >= 1, got {n_items} and {k}")
        self.n_items, self.k = n_items, k
        self._ranks: list[np.ndarray] = []
        self._recommended = np.zeros(n_items, dtype=bool)  # items in at least one top-k list

    def add(self, scores: Tensor, seen: Tensor, targets: Tensor) -> None:
        """One batch: scores (B, I), seen bool (B, I), targets (B,) held-out items."""
        if scores.shape[1] != self.n_items:
            raise ValueError(f"scores cover {scores.shape[1]} items but the accumulator was built for {self.n_items}")
        scores = scores.detach().float()
        self._ranks.append(target_ranks(scores, seen, targets).cpu().numpy())
        _, indices = top_k(scores, seen, self.k)
        self._recommended[indices.cpu().numpy().ravel()] = True

    def ranks(self) -> np.ndarray:
        """(users,) int64 0-based rank of every target added so far (for per-user analysis)."""
        return np.concatenate(self._ranks) if self._ranks else np.zeros(0, dtype=np.int64)

    def result(self) -> dict[str, float]:
        """{"hr_K", "ndcg_K", "mrr", "coverage_K", "users"} as plain Python numbers (K = k)."""
        ranks = self.ranks()
        if ranks.size == 0:
            raise ValueError("RankingAccumulator.result(): no users were added")
        hits = ranks < self.k
        ndcg = np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0)
        return {f"hr_{self.k}": float(hits.mean()), f"ndcg_{self.k}": float(ndcg.mean()),
                "mrr": float(np.mean(1.0 / (ranks + 1.0))),
                f"coverage_{self.k}": float(self._recommended.sum() / self.n_items), "users": int(ranks.size)}


def rating_metrics(pred: Tensor | np.ndarray, true: Tensor | np.ndarray) -> dict[str, float]:
    """Explicit-rating error: {"rmse", "mae"} via scikit-learn."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    p = np.asarray(pred.detach().cpu() if isinstance(pred, Tensor) else pred, dtype=np.float64).ravel()
    t = np.asarray(true.detach().cpu() if isinstance(true, Tensor) else true, dtype=np.float64).ravel()
    if p.size != t.size or p.size == 0:
        raise ValueError(f"rating_metrics: {p.size} predictions for {t.size} ratings; pass one per rating")
    return {"rmse": math.sqrt(mean_squared_error(t, p)), "mae": float(mean_absolute_error(t, p))}
