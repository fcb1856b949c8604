"""Content-based recommendation: a user profile in item-feature space, items ranked by cosine to it
(Lops, de Gemmis & Semeraro, 2011, "Content-based Recommender Systems: State of the Art and Trends").

    f_j          item j's features (genres, year, title TF-IDF, text embeddings), L2-normalised
    w_l          the rating of history item l; minus the user's mean rating when ``centred``
    p            sum_l w_l f_l / sum_l |w_l|                   the profile: a rating-weighted mean
    score(u, j)  p . f_j / |p|                                 cosine (f_j is unit length)

Nothing is learned from other users: the ``item_features`` buffer (I, F), filled by the runner, is all
the state. Items nobody rated are scored like any other, which is the point of content-based
recommendation (cold-start items); a user whose profile is zero (no history, or centred ratings
that are all equal) scores every item 0.

Explanations split the score exactly: ``history_contributions`` by history item (w_l / sum|w|) f_l . f_j / |p|,
``feature_contributions`` by feature p_f f_jf / |p|; each sums to the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fromzero.config import field, require
from fromzero.models.recommender_inputs import check_interactions, history_items, require_sizes
from fromzero.models.registry import register_family, register_model


@dataclass(frozen=True)
class ContentConfig:
    """Feature width and rating weighting of the content-based profile."""

    n_users: int = field(1, help="number of users (filled from the data)")
    n_items: int = field(1, help="catalogue size (filled from the data)")
    n_features: int = field(1, help="item feature width (filled from the item features)")
    centred: bool = field(False, help="weight history items by rating minus the user's mean (disliked items "
                                      "push similar items down) instead of by the raw rating")

    def __post_init__(self) -> None:
        require_sizes(self.n_users, self.n_items)
        require(self.n_features >= 1, "n_features", f"must be positive, got {self.n_features}")


class ContentBased(nn.Module):
    """Cosine between a user's rating-weighted feature profile and every item (batch["history"],
    batch["history_rating"]); ``feature_contributions`` names the features behind a score."""

    def __init__(self, config: ContentConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("item_features", torch.zeros(config.n_items, config.n_features))  # (I, F)

    @torch.no_grad()
    def fit(self, user: Tensor, item: Tensor, rating: Tensor) -> None:
        """Only checks the interactions and that ``item_features`` was filled: profiles are built from each
        batch's history at scoring time, so there is nothing to count."""
        check_interactions(user, item, rating, self.config.n_users, self.config.n_items)
        if not bool(self.item_features.any()):
            raise ValueError("content: item_features is all zeros; the runner must fill it before fit")

    def _unit_features(self) -> Tensor:
        return F.normalize(self.item_features, dim=1)  # (I, F); all-zero rows stay zero

    def _weights(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(history items (B, L) safe to index, weights (B, L) = w_l / sum|w|, 0 at pads)."""
        if "history" not in batch:
            raise ValueError("content scores from batch['history']; this batch has none")
        items, valid = history_items(batch, self.config.n_items)  # (B, L)
        rating = batch.get("history_rating", torch.ones_like(items, dtype=torch.float32)).float()
        rating = rating * valid
        if self.config.centred:
            mean = rating.sum(1, keepdim=True) / valid.sum(1, keepdim=True).clamp_min(1)  # (B, 1)
            rating = (rating - mean) * valid
        return items, rating / rating.abs().sum(1, keepdim=True).clamp_min(1e-12)

    def _profile(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(items (B, L), weights (B, L), profile p (B, F), |p| (B, 1) clamped away from 0)."""
        items, weights = self._weights(batch)
        profile = torch.einsum("bl,blf->bf", weights, self._unit_features()[items])  # (B, F)
        return items, weights, profile, profile.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def score_all(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, I): cosine between each user's profile and every item's features."""
        _, _, profile, norm = self._profile(batch)
        return (profile / norm) @ self._unit_features().t()

    def history_contributions(self, batch: dict[str, Tensor], items: Tensor) -> Tensor:
        """items (B, K) -> (B, K, L): history item l's weighted share of the cosine; sums over L to the score."""
        history, weights, _, norm = self._profile(batch)
        unit = self._unit_features()
        overlap = torch.einsum("bkf,blf->bkl", unit[items], unit[history])  # (B, K, L) f_j . f_l
        return overlap * (weights / norm).unsqueeze(1)

    def feature_contributions(self, batch: dict[str, Tensor], items: Tensor) -> Tensor:
        """items (B, K) -> (B, K, F): profile direction * item features; sums over F to the score."""
        _, _, profile, norm = self._profile(batch)
        return (profile / norm).unsqueeze(1) * self._unit_features()[items]


register_family("content", ContentConfig, ContentBased)


@register_model("content")
def content() -> ContentConfig:
    """Raw-rating-weighted profile; ``n_features`` is set from the run's item features."""
    return ContentConfig()
