"""A hybrid two-tower recommender: item content features + item ids + the user's history, one dot product.

    item tower   [v_i ; b_i] = MLP(x_i) + [warm_i and kept] e_i          x_i = item_features[i] (F,), e_i (dim + 1,)
    user tower   u = W mean_{l: history_l != PAD} v_{h_l} + [use_user_id] e_u      W (dim, dim), no bias
    score        s(u, i) = u . v_i + b_i

Cold-start items (``warm_items[i]`` False: never seen in training) never use their id embedding, so their
score depends on their features alone. During training each item's id embedding is dropped with probability
``id_dropout`` (a fresh ``torch.rand`` per call, so the Trainer's RNG state governs it and resume is exact), which
makes the content path learn to stand alone, as DropoutNet does (Volkovs et al., 2017, "DropoutNet: Addressing
Cold Start in Recommender Systems"). In eval mode every warm item uses its id. The last item-tower output
``b_i`` is an item bias: users with no history and no id (u = 0) still get a ranking (a learned popularity
that cold items reach through their features).

The user tower is linear in the history mean (a learned item-to-item similarity, as in FISM, Kabbur et al.,
2013), so :meth:`TwoTower.history_contributions` is an exact decomposition: history position l adds
``(W v_{h_l} / n) . v_i`` to item i's score, and these add up to the score minus ``e_u . v_i + b_i``.
Unknown users (index -1) have e_u = 0; a batch without ``"history"`` means an empty history;
``history_rating`` is not read (every history item counts equally).

Buffers the runner fills before training: ``item_features`` (I, F) float32 (``copy_``) and ``warm_items`` (I,)
bool (True for items seen in training). What the objectives use: ``score_items(batch, items)`` (bpr),
``predict_rating(user, item)`` (rating_regression: the score with an empty history), ``embedding_l2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fromzero.config import field, require
from fromzero.models.matrix_factorization import history_items, known_users, require_catalogue
from fromzero.models.registry import register_family, register_model


@dataclass(frozen=True)
class TwoTowerConfig:
    """Shape of the two-tower hybrid. ``n_users``, ``n_items`` and ``n_features`` are filled from the data."""

    n_users: int = field(1, help="number of users (filled from the data by the runner)")
    n_items: int = field(1, help="catalogue size (filled from the data by the runner)")
    n_features: int = field(1, help="item content feature width (filled from the data by the runner)")
    dim: int = field(64, help="dimension of the user and item vectors")
    hidden: int = field(128, help="width of the item content MLP's hidden layer")
    id_dropout: float = field(0.5, help="probability of dropping an item's id embedding in training")
    use_user_id: bool = field(True, help="add a learned per-user embedding to the history mean")
    init_std: float = field(0.05, help="standard deviation of the normal initialisation of the id embeddings")

    def __post_init__(self) -> None:
        require_catalogue(self.n_users, self.n_items)
        require(self.n_features >= 1, "n_features", f"must be at least 1, got {self.n_features}")
        require(self.dim > 0, "dim", f"must be positive, got {self.dim}")
        require(self.hidden > 0, "hidden", f"must be positive, got {self.hidden}")
        require(0.0 <= self.id_dropout < 1.0, "id_dropout", f"must be in [0, 1), got {self.id_dropout}")
        require(self.init_std > 0, "init_std", f"must be positive, got {self.init_std}")


class TwoTower(nn.Module):
    """``item_vectors() -> (I, D)``, ``user_vectors(batch) -> (B, D)``, ``score_items(batch, items (B, K))``,
    ``score_all(batch) -> (B, I)``, ``history_contributions(batch, items) -> (B, K, L)``."""

    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        c = self.config = config
        # the last output of each item-side map is the item bias b_i
        self.content = nn.Sequential(nn.Linear(c.n_features, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.dim + 1))
        self.item_ids = nn.Embedding(c.n_items, c.dim + 1)
        nn.init.normal_(self.item_ids.weight, 0.0, c.init_std)
        self.history_map = nn.Linear(c.dim, c.dim, bias=False)
        if c.use_user_id:
            self.user_ids = nn.Embedding(c.n_users, c.dim)
            nn.init.normal_(self.user_ids.weight, 0.0, c.init_std)
        self.register_buffer("item_features", torch.zeros(c.n_items, c.n_features))
        self.register_buffer("warm_items", torch.ones(c.n_items, dtype=torch.bool))

    def _item_tower(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """(v_i (..., D), b_i (...)) for item indices of any shape (all valid, 0..I-1)."""
        out = self.content(self.item_features[items])  # (..., D + 1)
        use_id = self.warm_items[items]  # (...)
        if self.training and self.config.id_dropout > 0:
            use_id = use_id & (torch.rand(items.shape, device=items.device) >= self.config.id_dropout)
        out = out + self.item_ids(items) * use_id[..., None]
        return out[..., :-1], out[..., -1]

    def item_vectors(self, items: Tensor | None = None) -> Tensor:
        """v_i of ``items`` (any shape) -> (..., D); of every catalogue item (I, D) when ``items`` is None."""
        return self._item_tower(self._every(items))[0]

    def item_biases(self, items: Tensor | None = None) -> Tensor:
        """b_i of ``items`` (any shape) -> (...); of every catalogue item (I,) when ``items`` is None."""
        return self._item_tower(self._every(items))[1]

    def _every(self, items: Tensor | None) -> Tensor:
        return torch.arange(self.config.n_items, device=self.item_features.device) if items is None else items

    def _history_terms(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(W v_{h_l} / n (B, L, D), 0 at pads; mask (B, L)): each history position's share of W mean."""
        user = batch["user"]
        history = batch.get("history")
        if history is None:  # no history given: an empty one
            history = torch.full((user.shape[0], 1), self.config.n_items, dtype=torch.long, device=user.device)
        safe, mask = history_items(history, self.config.n_items)
        vec = self.item_vectors(safe) * mask[..., None]  # (B, L, D)
        count = mask.sum(-1, keepdim=True).clamp(min=1)  # (B, 1): an empty history gives a zero mean
        return self.history_map(vec) / count[..., None], mask

    def user_vectors(self, batch: dict[str, Tensor]) -> Tensor:
        """u = W mean(history vectors) + e_u -> (B, D); from ``batch["user"]`` and ``batch["history"]``."""
        shares, _ = self._history_terms(batch)
        return shares.sum(1) + self._user_id_vectors(batch["user"])

    def _user_id_vectors(self, user: Tensor) -> Tensor:
        if not self.config.use_user_id:
            return torch.zeros(user.shape[0], self.config.dim, device=user.device)
        safe, known = known_users(user, self.config.n_users)
        return self.user_ids(safe) * known[:, None]  # (B, D)

    def score_items(self, batch: dict[str, Tensor], items: Tensor) -> Tensor:
        """s(u, i) of the batch's users for ``items`` (B, K) -> (B, K)."""
        u = self.user_vectors(batch)  # (B, D)
        v, b = self._item_tower(items)  # (B, K, D), (B, K)
        return torch.einsum("bd,bkd->bk", u, v) + b

    def score_all(self, batch: dict[str, Tensor]) -> Tensor:
        """s(u, i) for every catalogue item -> (B, I)."""
        u = self.user_vectors(batch)  # (B, D)
        v, b = self._item_tower(self._every(None))  # (I, D), (I,)
        return u @ v.T + b[None, :]

    def predict_rating(self, user: Tensor, item: Tensor) -> Tensor:
        """The score of pairs user (B,), item (B,) -> (B,) with an empty history (for rating_regression)."""
        return self.score_items({"user": user}, item[:, None])[:, 0]

    def history_contributions(self, batch: dict[str, Tensor], items: Tensor) -> Tensor:
        """Exact share of each history position in each item's score: items (B, K) -> (B, K, L), 0 at pads.
        Summed over L it equals score - e_u . v_i - b_i."""
        shares, mask = self._history_terms(batch)  # (B, L, D)
        v, _ = self._item_tower(items)  # (B, K, D)
        return torch.einsum("bld,bkd->bkl", shares, v) * mask[:, None, :]

    def embedding_l2(self, user: Tensor, items: Tensor) -> Tensor:
        """Squared L2 norm of the id embeddings one row uses: user (B,), items (B, K) -> (B,)
        (e_u when ``use_user_id``, and every e_i), for the objectives' ``reg`` term."""
        total = self.item_ids(items).pow(2).sum((-2, -1))
        if self.config.use_user_id:
            safe, known = known_users(user, self.config.n_users)
            total = total + self.user_ids(safe).pow(2).sum(-1) * known
        return total


register_family("two-tower", TwoTowerConfig, TwoTower)


@register_model("two-tower")
def two_tower() -> TwoTowerConfig:
    """The hybrid: content MLP + id embeddings with id dropout, history-mean user tower (train with ``bpr``)."""
    return TwoTowerConfig(dim=64, hidden=128, id_dropout=0.5, use_user_id=True)
