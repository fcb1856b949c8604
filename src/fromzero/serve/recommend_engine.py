"""Top-k recommendations from a recommender run, for ``fromzero recommend`` and ``POST /v1/recommendations``.

A user's history is every rating the run holds for them (all three splits, oldest first), plus the rows of
their own ratings file when one is given. Items in the history are never recommended.

Cold start (documented in docs/23-recommenders.md): a user with no ratings at all, or a user the model
cannot place (matrix factorisation has no vector for a user it never trained on), gets the most popular
items of the training split, and the reply says so in ``fallback``. Every other family scores a new user
from the ratings they bring (item-kNN, content, two-tower, SASRec, BERT4Rec read the history itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from fromzero.data.interactions import Interactions
from fromzero.eval.ranking_metrics import top_k
from fromzero.runs.recommender import RecommenderRun

#: Families that score from a user id alone (a user the run never saw cannot be scored by them).
USER_ID_FAMILIES = ("mf",)
_REASONS_PER_ITEM = 3


@dataclass
class Recommendation:
    item_id: int
    title: str
    score: float
    because: list[tuple[str, float]] = field(default_factory=list)  # (history title or feature, contribution)


@dataclass
class RecommendReply:
    user_id: int | None
    history: int  # ratings the scores were computed from
    items: list[Recommendation]
    fallback: str | None = None  # why the popularity fallback answered, if it did


class RecommendEngine:
    """One loaded recommender run answering top-k requests (CPU, no gradients)."""

    def __init__(self, run: RecommenderRun) -> None:
        self.run, self.model = run, run.model.eval()
        self.n_items, self.family = run.n_items, run.info["family"]
        self.history_length = int(run.info["history_length"])
        self.feature_names: list[str] = list(run.info.get("feature_names") or [])
        train = run.split.train
        self.popularity = np.bincount(train.item, minlength=self.n_items).astype(np.float64)  # (I,)
        everything = run.data.interactions
        order = np.lexsort((everything.timestamp, everything.user))
        self._rows = {int(u): order[everything.user[order] == u] for u in np.unique(everything.user)}

    @property
    def model_id(self) -> str:
        return self.run.path.name

    def _history(self, user: int | None, extra: Interactions | None) -> tuple[np.ndarray, np.ndarray]:
        """(items, ratings) oldest first: the run's ratings of ``user`` then ``extra``'s rows by timestamp."""
        data = self.run.data.interactions
        rows = self._rows.get(user, np.empty(0, dtype=np.int64)) if user is not None else np.empty(0, np.int64)
        items, ratings, stamps = data.item[rows], data.rating[rows], data.timestamp[rows]
        if extra is not None and len(extra):
            keep = ~np.isin(extra.item, items)  # a re-rated item counts once: the run's rating stays
            items = np.concatenate([items, extra.item[keep]])
            ratings = np.concatenate([ratings, extra.rating[keep]])
            stamps = np.concatenate([stamps, extra.timestamp[keep]])
            order = np.argsort(stamps, kind="stable")
            items, ratings = items[order], ratings[order]
        return items.astype(np.int64), ratings.astype(np.float32)

    def _batch(self, user: int | None, items: np.ndarray, ratings: np.ndarray) -> dict[str, torch.Tensor]:
        width = self.history_length
        history = torch.full((1, width), self.n_items, dtype=torch.long)  # PAD-padded on the left
        history_rating = torch.zeros((1, width))
        recent = items[-width:]
        if len(recent):
            history[0, width - len(recent):] = torch.as_tensor(recent)
            history_rating[0, width - len(recent):] = torch.as_tensor(ratings[-width:])
        return {"user": torch.tensor([-1 if user is None else user]), "history": history,
                "history_rating": history_rating}

    @torch.no_grad()
    def recommend(self, user_id: int | None, k: int = 10, explain: bool = False,
                  ratings: Interactions | None = None) -> RecommendReply:
        """The top ``k`` unseen items for ``user_id`` (original id; None or unknown: only ``ratings`` count)."""
        user = self.run.user_index(user_id) if user_id is not None else None
        items, values = self._history(user, ratings)
        seen = torch.zeros((1, self.n_items), dtype=torch.bool)
        seen[0, torch.as_tensor(items, dtype=torch.long)] = True
        fallback = None
        if len(items) == 0:
            fallback = "no ratings: the most popular items in training"
        elif user is None and self.family in USER_ID_FAMILIES:
            fallback = f"a {self.family} model has no vector for a user it never trained on: the most popular items"
        batch = self._batch(user, items, values)
        scores = (torch.as_tensor(self.popularity, dtype=torch.float32)[None] if fallback
                  else self.model.score_all(batch).float())  # (1, I)
        k = min(k, int((~seen).sum()))
        top_values, top_items = top_k(scores, seen, k)
        reasons = self._reasons(batch, top_items) if explain and not fallback and self.family != "popularity" else None
        out = []
        for j in range(k):
            i = int(top_items[0, j])
            because = reasons[j] if reasons is not None else (
                [(f"{int(self.popularity[i])} ratings in training", float(self.popularity[i]))] if explain else [])
            out.append(Recommendation(int(self.run.data.catalogue.item_ids[i]), self.run.data.catalogue.titles[i],
                                      float(top_values[0, j]), because))
        return RecommendReply(user_id, len(items), out, fallback)

    def _reasons(self, batch: dict[str, torch.Tensor], top_items: torch.Tensor) -> list[list[tuple[str, float]]]:
        """Per recommended item: the history items (or content features) that added most to its score."""
        titles = self.run.data.catalogue.titles
        contrib = self.model.history_contributions(batch, top_items)[0]  # (K, L)
        shown = batch["history"][0]
        out = []
        features = (self.model.feature_contributions(batch, top_items)[0]  # (K, F)
                    if hasattr(self.model, "feature_contributions") and self.feature_names else None)
        for j in range(top_items.shape[1]):
            best = torch.argsort(contrib[j], descending=True)[:_REASONS_PER_ITEM]
            row = [(titles[int(shown[p])], float(contrib[j, p])) for p in best
                   if int(shown[p]) != self.n_items and float(contrib[j, p]) > 0]
            if features is not None:
                top = torch.argsort(features[j], descending=True)[:_REASONS_PER_ITEM]
                row += [(self.feature_names[int(f)], float(features[j, f])) for f in top if float(features[j, f]) > 0]
            out.append(row)
        return out
