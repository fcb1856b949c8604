"""The popularity baseline: every user gets the items with the most training interactions.

    score(u, j) = #training interactions with item j        (the same list for everyone)

Any personalised model must beat it; on MovieLens it is a strong baseline for HR@10 because
popular films are what most users watch next. Cold-start items score 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fromzero.config import field
from fromzero.models.recommender_inputs import batch_size, check_interactions, history_length, require_sizes
from fromzero.models.registry import register_family, register_model


@dataclass(frozen=True)
class PopularityConfig:
    """Sizes only: the runner fills them from the data."""

    n_users: int = field(1, help="number of users (filled from the data)")
    n_items: int = field(1, help="catalogue size (filled from the data)")

    def __post_init__(self) -> None:
        require_sizes(self.n_users, self.n_items)


class Popularity(nn.Module):
    """``fit`` fills the ``counts`` buffer (I,); ``score_all`` returns it for every user."""

    def __init__(self, config: PopularityConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("counts", torch.zeros(config.n_items))  # (I,) interactions per item

    @torch.no_grad()
    def fit(self, user: Tensor, item: Tensor, rating: Tensor) -> None:
        """Count the training interactions of each item (ratings are ignored: any rating is an interaction)."""
        check_interactions(user, item, rating, self.config.n_users, self.config.n_items)
        counts = torch.bincount(item.to(torch.int64).cpu(), minlength=self.config.n_items)
        self.counts.copy_(counts.to(self.counts))

    def score_all(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, I): the item counts, the same row for every user."""
        return self.counts.unsqueeze(0).repeat(batch_size(batch), 1)

    def history_contributions(self, batch: dict[str, Tensor], items: Tensor) -> Tensor:
        """(B, K, L) zeros: a user's history plays no part in the score."""
        return torch.zeros(*items.shape, history_length(batch), device=self.counts.device)


register_family("popularity", PopularityConfig, Popularity)


@register_model("popularity")
def popularity() -> PopularityConfig:
    """Most-interacted items first, for everyone."""
    return PopularityConfig()
