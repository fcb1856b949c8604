"""Matrix factorisation for recommendation: biased MF for explicit ratings, and the same model for BPR.

    r_hat(u, i) = mu + b_u + b_i + p_u . q_i          p_u, q_i in R^dim; mu, b_u, b_i only when ``with_bias``

``mu`` is a buffer, the training mean rating, which the runner sets with :meth:`MatrixFactorization.set_global_mean`
(Koren, Bell & Volinsky, 2009, "Matrix Factorization Techniques for Recommender Systems"). Trained with the
``rating_regression`` objective (MSE on :meth:`predict_rating`) it predicts ratings; trained with ``bpr``
(Rendle et al., 2009, https://arxiv.org/abs/1205.2618) on ``score_items`` it ranks. Every scoring method returns the
same ``r_hat``: in BPR's difference s_pos - s_neg the terms mu and b_u cancel, so they get no gradient and do not
change any ranking; keeping them means an explicit model's scores read as predicted ratings.

Users with index -1 (unknown to the model, e.g. a cold-start user) have p_u = 0 and b_u = 0: their scores are
``mu + b_i``, a popularity-like ranking by item bias (all zeros without biases, so the caller's fallback decides).

What the objectives use: ``predict_rating(user, item)`` (rating_regression), ``score_items(batch, items)`` (bpr),
``embedding_l2(user, items)`` (their optional ``reg`` term). MF has no history input, so
``history_contributions`` explains a recommendation by item similarity: the cosine between each history item's
factor and the recommended item's factor ("similar items you rated").

Factors start normal(0, ``init_std``); biases start at 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model


def require_catalogue(n_users: int, n_items: int) -> None:
    """Shared validation of the data-filled sizes of every recommender config."""
    require(n_users >= 1, "n_users", f"must be at least 1 (filled from the data), got {n_users}")
    require(n_items >= 1, "n_items", f"must be at least 1 (filled from the data), got {n_items}")


def history_items(history: Tensor, n_items: int) -> tuple[Tensor, Tensor]:
    """(safe indices, mask) of a PAD-padded history (B, L): PAD (= n_items), MASK and negatives map to item 0
    with mask False, so they can be looked up and then zeroed."""
    mask = (history >= 0) & (history < n_items)  # (B, L)
    return torch.where(mask, history, torch.zeros_like(history)), mask


def known_users(user: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
    """(safe indices, mask) of user indices (B,): -1 (unknown) maps to user 0 with mask False."""
    mask = (user >= 0) & (user < n_users)  # (B,)
    return torch.where(mask, user, torch.zeros_like(user)), mask


@dataclass(frozen=True)
class MFConfig:
    """Shape of a matrix factorisation model. ``n_users`` and ``n_items`` are filled from the data."""

    n_users: int = field(1, help="number of users (filled from the data by the runner)")
    n_items: int = field(1, help="catalogue size (filled from the data by the runner)")
    dim: int = field(32, help="latent factor dimension")
    init_std: float = field(0.1, help="standard deviation of the normal initialisation of the factors")
    with_bias: bool = field(True, help="add the global mean and per-user and per-item biases")

    def __post_init__(self) -> None:
        require_catalogue(self.n_users, self.n_items)
        require(self.dim > 0, "dim", f"must be positive, got {self.dim}")
        require(self.init_std > 0, "init_std", f"must be positive, got {self.init_std}")


class MatrixFactorization(nn.Module):
    """``predict_rating(user, item) -> (B,)``; ``score_items(batch, items (B, K)) -> (B, K)``;
    ``score_all(batch) -> (B, I)``; ``history_contributions(batch, items) -> (B, K, L)``."""

    def __init__(self, config: MFConfig) -> None:
        super().__init__()
        c = self.config = config
        self.user_factors = nn.Embedding(c.n_users, c.dim)
        self.item_factors = nn.Embedding(c.n_items, c.dim)
        nn.init.normal_(self.user_factors.weight, 0.0, c.init_std)
        nn.init.normal_(self.item_factors.weight, 0.0, c.init_std)
        if c.with_bias:
            self.user_bias = nn.Embedding(c.n_users, 1)
            self.item_bias = nn.Embedding(c.n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        # a buffer, so model.safetensors carries it; 0 until the runner sets the training mean
        self.register_buffer("global_mean", torch.zeros(()))

    def set_global_mean(self, value: float) -> None:
        """Set mu, the training mean rating (only used when ``with_bias``)."""
        self.global_mean.fill_(float(value))

    def _user_terms(self, user: Tensor) -> tuple[Tensor, Tensor]:
        """(p_u (B, D), mu + b_u (B,)), zero factor and bias for unknown users (-1)."""
        safe, known = known_users(user, self.config.n_users)
        p = self.user_factors(safe) * known[:, None]  # (B, D)
        if not self.config.with_bias:
            return p, torch.zeros_like(p[:, 0])
        return p, self.global_mean + self.user_bias(safe)[:, 0] * known  # (B,)

    def _item_bias(self, items: Tensor) -> Tensor:
        if not self.config.with_bias:
            return torch.zeros(items.shape, device=items.device)
        return self.item_bias(items)[..., 0]

    def predict_rating(self, user: Tensor, item: Tensor) -> Tensor:
        """r_hat for pairs: user (B,), item (B,) -> (B,)."""
        return self.score_items({"user": user}, item[:, None])[:, 0]

    def score_items(self, batch: dict[str, Tensor], items: Tensor) -> Tensor:
        """r_hat of ``batch["user"]`` (B,) for ``items`` (B, K) -> (B, K)."""
        p, base = self._user_terms(batch["user"])  # (B, D), (B,)
        q = self.item_factors(items)  # (B, K, D)
        return torch.einsum("bd,bkd->bk", p, q) + base[:, None] + self._item_bias(items)

    def score_all(self, batch: dict[str, Tensor]) -> Tensor:
        """r_hat of ``batch["user"]`` (B,) for every catalogue item -> (B, I); unknown users get mu + b_i."""
        p, base = self._user_terms(batch["user"])  # (B, D), (B,)
        every = torch.arange(self.config.n_items, device=p.device)
        return p @ self.item_factors.weight.T + base[:, None] + self._item_bias(every)[None, :]

    def history_contributions(self, batch: dict[str, Tensor], items: Tensor) -> Tensor:
        """Cosine similarity between each history item's factor and each recommended item's factor:
        items (B, K) -> (B, K, L), 0 at pads. Not a decomposition of the score (MF reads no history):
        it names the rated items most similar to a recommendation."""
        safe, mask = history_items(batch["history"], self.config.n_items)
        h = F.normalize(self.item_factors(safe), dim=-1)  # (B, L, D)
        q = F.normalize(self.item_factors(items), dim=-1)  # (B, K, D)
        return torch.einsum("bkd,bld->bkl", q, h) * mask[:, None, :]

    def embedding_l2(self, user: Tensor, items: Tensor) -> Tensor:
        """Squared L2 norm of the parameters one row uses: user (B,), items (B, K) -> (B,)
        (p_u, b_u and every q_i, b_i), for the objectives' ``reg`` term."""
        safe, known = known_users(user, self.config.n_users)
        total = self.user_factors(safe).pow(2).sum(-1) * known + self.item_factors(items).pow(2).sum((-2, -1))
        if self.config.with_bias:
            total = total + self.user_bias(safe)[:, 0].pow(2) * known + self.item_bias(items).pow(2).sum((-2, -1))
        return total


register_family("mf", MFConfig, MatrixFactorization)


@register_model("mf-explicit")
def mf_explicit() -> MFConfig:
    """Biased MF for explicit ratings (train with ``rating_regression``)."""
    return MFConfig(dim=32, init_std=0.1, with_bias=True)


@register_model("mf-bpr")
def mf_bpr() -> MFConfig:
    """MF for implicit feedback (train with ``bpr``); the item bias keeps a popularity term."""
    return MFConfig(dim=64, init_std=0.1, with_bias=True)
