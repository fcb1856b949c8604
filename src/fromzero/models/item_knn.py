"""Item-based k-nearest-neighbour collaborative filtering (Sarwar et al., 2001, "Item-Based Collaborative
Filtering Recommendation Algorithms", https://dl.acm.org/doi/10.1145/371920.372071).

    r_i          item i's column of the user-item matrix: 1 per interaction (binary) or the rating
    sim(i, j)    r_i . r_j / (|r_i| |r_j| + shrinkage)       cosine; shrinkage damps pairs with little support
    N(i)         the ``neighbours`` items most similar to i (i itself excluded; ties to the lower index)
    score(u, j)  sum over history items h of u with j in N(h) of sim(h, j)

Only the top neighbours are kept (buffers ``neighbour_index`` / ``neighbour_sim``, I x K), so the
state is 9,066 x 50 x 12 bytes = 5.4 MB for MovieLens. The I x I similarity is never held at once:
rows are computed a chunk at a time as a sparse (I, U) @ dense (U, chunk) product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from fromzero.config import field, require
from fromzero.models.recommender_inputs import check_interactions, history_items, require_sizes
from fromzero.models.registry import register_family, register_model

CHUNK_ELEMENTS = 1 << 22  # similarity entries computed at once (16 MB of float32)


@dataclass(frozen=True)
class ItemKnnConfig:
    """Neighbourhood size, interaction weighting and shrinkage of item-kNN."""

    n_users: int = field(1, help="number of users (filled from the data)")
    n_items: int = field(1, help="catalogue size (filled from the data)")
    neighbours: int = field(50, help="most similar items kept per item")
    weighting: Literal["binary", "rating"] = field("binary", help="user-item matrix entries: 1, or the rating")
    shrinkage: float = field(0.0, help="added to the cosine's denominator: damps similarities of rarely co-rated pairs")

    def __post_init__(self) -> None:
        require_sizes(self.n_users, self.n_items)
        require(self.neighbours >= 1, "neighbours", f"must be positive, got {self.neighbours}")
        require(self.weighting in ("binary", "rating"), "weighting", f"must be binary or rating, got {self.weighting}")
        require(self.shrinkage >= 0, "shrinkage", f"must be >= 0, got {self.shrinkage}")

    @property
    def kept(self) -> int:
        """K: neighbours actually kept (an item is never its own neighbour)."""
        return min(self.neighbours, max(self.n_items - 1, 1))


def _user_item_columns(user: Tensor, item: Tensor, rating: Tensor, config: ItemKnnConfig) -> Tensor:
    """The user-item matrix stored item-major, sparse (I, U); a repeated (user, item) pair counts once."""
    values = rating.float() if config.weighting == "rating" else torch.ones(len(item))
    matrix = torch.sparse_coo_tensor(torch.stack([item.long(), user.long()]), values,
                                     (config.n_items, config.n_users), check_invariants=True)
    matrix = matrix.coalesce()
    if config.weighting == "binary":  # coalesce summed repeats; binary means "interacted at all"
        matrix = torch.sparse_coo_tensor(matrix.indices(), torch.ones_like(matrix.values()), matrix.shape,
                                         check_invariants=True).coalesce()
    return matrix


def top_neighbours(columns: Tensor, k: int, shrinkage: float) -> tuple[Tensor, Tensor]:
    """columns sparse (I, U) -> (index (I, k) int64, sim (I, k) float32): each item's k most cosine-similar
    other items, most similar first, ties to the lower index; a chunk of rows at a time."""
    n_items = columns.shape[0]
    norms = torch.zeros(n_items).index_add_(0, columns.indices()[0], columns.values() ** 2).sqrt()  # (I,)
    index = torch.zeros(n_items, k, dtype=torch.int64)
    sim = torch.zeros(n_items, k)
    chunk = max(1, CHUNK_ELEMENTS // n_items)
    for start in range(0, n_items, chunk):
        rows = torch.arange(start, min(start + chunk, n_items))  # (C,)
        block = columns.index_select(0, rows).to_dense()  # (C, U)
        dots = torch.sparse.mm(columns, block.t()).t()  # (C, I)
        denom = norms[rows, None] * norms[None, :] + shrinkage  # (C, I)
        cosine = torch.where(denom > 0, dots / denom.clamp_min(1e-12), torch.zeros_like(dots))
        cosine[torch.arange(len(rows)), rows] = float("-inf")  # never its own neighbour
        order = torch.sort(cosine, dim=1, descending=True, stable=True).indices[:, :k]  # (C, k)
        index[rows] = order
        sim[rows] = torch.gather(cosine, 1, order).clamp_min(0.0)  # -inf only when I = 1 (no other item)
    return index, sim


class ItemKnn(nn.Module):
    """``fit`` fills ``neighbour_index`` / ``neighbour_sim`` (I, K); scores add up neighbour similarities of
    the user's history (batch["history"], PAD-padded), so users unknown to the model are scored alike."""

    def __init__(self, config: ItemKnnConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("neighbour_index", torch.zeros(config.n_items, config.kept, dtype=torch.int64))
        self.register_buffer("neighbour_sim", torch.zeros(config.n_items, config.kept))

    @torch.no_grad()
    def fit(self, user: Tensor, item: Tensor, rating: Tensor) -> None:
        """Compute every item's top-K neighbours from the training interactions."""
        c = self.config
        check_interactions(user, item, rating, c.n_users, c.n_items)
        columns = _user_item_columns(user.cpu(), item.cpu(), rating.cpu(), c)
        index, sim = top_neighbours(columns, c.kept, c.shrinkage)
        self.neighbour_index.copy_(index)
        self.neighbour_sim.copy_(sim)

    def _neighbours(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(index (B, L, K), sim (B, L, K)) of every history position; 0 similarity at pads."""
        if "history" not in batch:
            raise ValueError("item-knn scores from batch['history']; this batch has none")
        items, valid = history_items(batch, self.config.n_items)  # (B, L)
        return self.neighbour_index[items], self.neighbour_sim[items] * valid.unsqueeze(-1)

    def score_all(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, I): for each history item h, sim(h, j) added to each of h's neighbours j."""
        index, sim = self._neighbours(batch)  # (B, L, K)
        scores = torch.zeros(index.shape[0], self.config.n_items, device=sim.device)
        return scores.scatter_add_(1, index.flatten(1), sim.flatten(1))

    def history_contributions(self, batch: dict[str, Tensor], items: Tensor) -> Tensor:
        """items (B, K') -> (B, K', L): sim(history[l], item), 0 where the item is not a neighbour or l is a pad."""
        index, sim = self._neighbours(batch)  # (B, L, K)
        match = index.unsqueeze(1) == items[:, :, None, None]  # (B, K', L, K)
        return (match * sim.unsqueeze(1)).sum(-1)


register_family("item-knn", ItemKnnConfig, ItemKnn)


@register_model("item-knn")
def item_knn() -> ItemKnnConfig:
    """Binary cosine item-kNN with 50 neighbours, no shrinkage."""
    return ItemKnnConfig()
