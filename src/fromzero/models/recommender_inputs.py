"""What the count-based recommender families share about their inputs: batch size, the history's PAD
mask, and the interactions ``fit`` receives, checked.

Items are dense indices 0..I-1; ``PAD = n_items`` pads histories (left-padded, most recent last) and
``MASK = n_items + 1`` is BERT4Rec's mask token, so any history value >= n_items is not an item.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fromzero.config import require


def batch_size(batch: dict[str, Tensor]) -> int:
    """B, from batch["user"] (B,) or batch["history"] (B, L)."""
    for key in ("user", "history"):
        if key in batch:
            return int(batch[key].shape[0])
    raise ValueError("a recommender batch needs 'user' or 'history'")


def history_length(batch: dict[str, Tensor]) -> int:
    """L of batch["history"] (B, L), 0 when the batch has no history."""
    return int(batch["history"].shape[1]) if "history" in batch else 0


def history_items(batch: dict[str, Tensor], n_items: int) -> tuple[Tensor, Tensor]:
    """(items (B, L) with non-items replaced by 0 so they can index tables, valid bool (B, L))."""
    history = batch["history"]
    valid = (history >= 0) & (history < n_items)  # PAD and MASK are not items
    return torch.where(valid, history, torch.zeros_like(history)), valid


def check_interactions(user: Tensor, item: Tensor, rating: Tensor, n_users: int, n_items: int) -> None:
    """user, item, rating are (N,) tensors of one length with indices inside the model's config (else ValueError:
    the runner built the model for other data)."""
    if not (user.dim() == item.dim() == rating.dim() == 1 and len(user) == len(item) == len(rating)):
        raise ValueError(f"fit: user, item and rating must be (N,) tensors of one length, got "
                         f"{tuple(user.shape)}, {tuple(item.shape)}, {tuple(rating.shape)}")
    if len(item) and (int(item.min()) < 0 or int(item.max()) >= n_items):
        raise ValueError(f"fit: item indices span [{int(item.min())}, {int(item.max())}] but n_items = {n_items}")
    if len(user) and (int(user.min()) < 0 or int(user.max()) >= n_users):
        raise ValueError(f"fit: user indices span [{int(user.min())}, {int(user.max())}] but n_users = {n_users}")


def require_sizes(n_users: int, n_items: int) -> None:
    """Validate a recommender config's data-filled sizes."""
    require(n_users >= 1, "n_users", f"must be positive (the runner fills it from the data), got {n_users}")
    require(n_items >= 1, "n_items", f"must be positive (the runner fills it from the data), got {n_items}")
