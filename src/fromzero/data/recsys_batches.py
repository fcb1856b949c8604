"""Batches for recommenders, as dicts of tensors the Trainer's BatchSource hands out.

Item indices are dense ``0..I-1``; ``PAD = n_items`` pads histories (always on the LEFT, most recent item
last) and ``MASK = n_items + 1`` is the masked-item token. ``-100`` marks targets nothing predicts.

    RatingBatches     user (B,), item (B,), rating (B,) float32              one training rating per row
    PairBatches       user, item (B,) positive, negative (B, n_neg), history (B, L), history_rating (B, L)
    SequenceBatches   user (B,), history (B, L), target (B, L)                one user per row
    RankingBatches    user (B,), history (B, L), history_rating (B, L), target (B,); seen_mask(i) (B, I)

Training sources read an endless stream of epoch permutations (as image_batches does): stream position q
is element ``perm_{q // N}[q % N]`` with ``perm_e`` drawn from (seed, e), and micro-batch ``g = step *
grad_accum + micro`` holds positions ``[g B, (g + 1) B)``, so each rating (or user) is seen once per epoch.
Negatives and masks draw from a generator seeded by (seed, step, micro): ``batch(step, micro)`` is a pure
function of its arguments, so a resumed run draws exactly the negatives it would have drawn.

Choices, documented here once:
- PairBatches' history is the user's training items *other than the positive* (the L most recent of them):
  the positive in its own history would let a history model learn to copy.
- Negatives are uniform over the items the user did not rate in training (vectorised rejection sampling:
  draw uniformly, redraw the hits); validation/test items may be drawn, as the model cannot know them.
- SequenceBatches takes users with >= 2 training items and, by default, the last ``max_len + 1`` items
  (``window="random"``: a random contiguous window ending anywhere, which uses long histories fully).
  ``mode="next"`` (SASRec): input = items[:-1], target = items[1:]. ``mode="masked"`` (BERT4Rec): each
  item becomes MASK with probability ``mask_prob``; the last item with probability ``last_mask_prob``
  (default 0.5: at test time the model fills one MASK appended after the history, so training must often
  mask the end, yet also see the last item as context); a row with nothing masked masks its last item.
- RankingBatches' ``seen_mask`` holds the user's *whole* history (not only the last ``max_len``), so
  ranking never recommends anything the user already rated.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from fromzero.data.hashing import batch_seed, splitmix64
from fromzero.data.interaction_split import Split, user_histories
from fromzero.data.interactions import Interactions
from fromzero.errors import ConfigError, DataError

IGNORE = -100
_PERM_TAG = 0x52454353  # keeps the permutation seeds apart from the batch seeds

History = tuple[np.ndarray, np.ndarray]  # (items int64, ratings float32), time-ordered


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed & ((1 << 63) - 1))


def _check_sizes(batch_size: int, grad_accum: int) -> None:
    if batch_size < 1 or grad_accum < 1:
        raise ConfigError(f"batch_size and grad_accum must be >= 1, got {batch_size} and {grad_accum}")


class EpochStream:
    """Indices of micro-batch (step, micro) in an endless stream of seeded epoch permutations of ``0..n-1``."""

    def __init__(self, n: int, batch_size: int, seed: int, grad_accum: int = 1) -> None:
        if n < 1:
            raise DataError("no training examples to draw batches from; the training split is empty")
        _check_sizes(batch_size, grad_accum)
        self.n, self.batch_size, self.seed, self.grad_accum = n, batch_size, seed, grad_accum
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) >= 4:  # a batch spans at most a few epochs; keep memory bounded
                self._perms.pop(next(iter(self._perms)))
            gen = _generator(batch_seed(splitmix64(self.seed) ^ _PERM_TAG, epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=gen)
        return self._perms[epoch]

    def indices(self, step: int, micro: int = 0) -> torch.Tensor:
        """Element indices (B,) of micro-batch (step, micro)."""
        g, b = step * self.grad_accum + micro, self.batch_size
        q = torch.arange(g * b, (g + 1) * b)  # stream positions
        epochs, within = q // self.n, q % self.n
        out = torch.empty(b, dtype=torch.long)
        for e in epochs.unique().tolist():
            sel = epochs == e
            out[sel] = self._perm(e)[within[sel]]
        return out


def pad_histories(histories: list[History], users: np.ndarray | list[int], max_len: int, n_items: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``max_len`` most recent items of each user's history, LEFT-padded with PAD = ``n_items``:
    (items (B, L) int64, ratings (B, L) float32, 0 at pads)."""
    items = torch.full((len(users), max_len), n_items, dtype=torch.long)
    ratings = torch.zeros(len(users), max_len, dtype=torch.float32)
    for row, u in enumerate(np.asarray(users).tolist()):
        it, ra = histories[u]
        k = min(len(it), max_len)
        if k:
            items[row, max_len - k:] = torch.from_numpy(np.asarray(it[-k:], dtype=np.int64))
            ratings[row, max_len - k:] = torch.from_numpy(np.asarray(ra[-k:], dtype=np.float32))
    return items, ratings


class RatingBatches:
    """One training rating per row, shuffled per epoch: {"user", "item", "rating"}."""

    def __init__(self, train: Interactions, batch_size: int, *, seed: int = 0, grad_accum: int = 1) -> None:
        self.user = torch.from_numpy(train.user.astype(np.int64))
        self.item = torch.from_numpy(train.item.astype(np.int64))
        self.rating = torch.from_numpy(train.rating.astype(np.float32))
        self.stream = EpochStream(len(train), batch_size, seed, grad_accum)

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """The batch for (step, micro): the same arguments always give the same tensors."""
        idx = self.stream.indices(step, micro)
        return {"user": self.user[idx], "item": self.item[idx], "rating": self.rating[idx]}


class NegativeSampler:
    """Uniform items a user did not rate in ``train``, by vectorised rejection sampling."""

    def __init__(self, train: Interactions, n_users: int, n_items: int) -> None:
        self.n_items = n_items
        self.keys = torch.from_numpy(np.unique(train.user.astype(np.int64) * n_items + train.item))  # (N,) sorted
        per_user = np.bincount(train.user, minlength=n_users)
        if len(per_user) and per_user.max() >= n_items:
            raise DataError(f"user index {int(per_user.argmax())} rated every item in training: no negatives to "
                            "sample for BPR; drop that user")

    def rated(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Whether each (user, item) pair (any equal shapes) is a training rating."""
        q = user * self.n_items + item
        pos = torch.searchsorted(self.keys, q).clamp(max=max(len(self.keys) - 1, 0))
        return self.keys[pos] == q if len(self.keys) else torch.zeros_like(q, dtype=torch.bool)

    def sample(self, user: torch.Tensor, n_neg: int, gen: torch.Generator) -> torch.Tensor:
        """(B,) users -> (B, n_neg) items none of them rated in training."""
        users = user[:, None].expand(-1, n_neg)  # (B, n_neg)
        out = torch.randint(self.n_items, users.shape, generator=gen)
        redo = self.rated(users, out)
        while redo.any():  # a user rates a small share of the catalogue: few rounds
            out[redo] = torch.randint(self.n_items, (int(redo.sum()),), generator=gen)
            redo = self.rated(users, out)
        return out


class PairBatches:
    """BPR / two-tower rows: a training rating (user, positive item), ``n_neg`` negatives the user did not
    rate in training, and the user's other training items as history (see the module docstring)."""

    def __init__(self, train: Interactions, n_users: int, n_items: int, batch_size: int, *, n_neg: int = 1,
                 max_len: int = 50, seed: int = 0, grad_accum: int = 1) -> None:
        if n_neg < 1 or max_len < 1:
            raise ConfigError(f"n_neg and max_len must be >= 1, got {n_neg} and {max_len}")
        self.n_neg, self.max_len, self.n_items, self.seed = n_neg, max_len, n_items, seed
        self.user = torch.from_numpy(train.user.astype(np.int64))
        self.item = torch.from_numpy(train.item.astype(np.int64))
        self.stream = EpochStream(len(train), batch_size, seed, grad_accum)
        self.sampler = NegativeSampler(train, n_users, n_items)
        # max_len + 1 most recent items: one of them may be the positive, which is dropped per row
        self.hist, self.hist_rating = pad_histories(user_histories(train, n_users), np.arange(n_users),
                                                    max_len + 1, n_items)  # (U, L + 1)

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """The batch for (step, micro): the same arguments always give the same tensors and negatives."""
        idx = self.stream.indices(step, micro)
        user, item = self.user[idx], self.item[idx]  # (B,)
        gen = _generator(batch_seed(self.seed, step, micro))
        negative = self.sampler.sample(user, self.n_neg, gen)  # (B, n_neg)
        rows, rows_rating = self.hist[user], self.hist_rating[user]  # (B, L + 1)
        keep = rows != item[:, None]
        keep[:, 0] &= ~keep.all(dim=1)  # positive not among them: drop the oldest instead
        b, length = len(idx), self.max_len
        return {"user": user, "item": item, "negative": negative, "history": rows[keep].view(b, length),
                "history_rating": rows_rating[keep].view(b, length)}


class SequenceBatches:
    """One user per row (users with >= 2 training items, shuffled per epoch): ``mode="next"`` for SASRec,
    ``"masked"`` for BERT4Rec (see the module docstring)."""

    def __init__(self, histories: list[History], n_items: int, max_len: int, batch_size: int, *,
                 mode: Literal["next", "masked"] = "next", mask_prob: float = 0.2, last_mask_prob: float = 0.5,
                 window: Literal["last", "random"] = "last", seed: int = 0, grad_accum: int = 1) -> None:
        if mode not in ("next", "masked") or window not in ("last", "random"):
            raise ConfigError(f"mode must be next | masked and window last | random, got {mode!r}, {window!r}")
        if not (0 <= mask_prob <= 1 and 0 <= last_mask_prob <= 1) or max_len < 2:
            raise ConfigError(f"mask_prob and last_mask_prob must be in [0, 1] and max_len >= 2, got {mask_prob}, "
                              f"{last_mask_prob}, {max_len}")
        self.histories, self.n_items, self.max_len, self.mode = histories, n_items, max_len, mode
        self.mask_prob, self.last_mask_prob, self.window, self.seed = mask_prob, last_mask_prob, window, seed
        self.users = np.asarray([u for u, (items, _) in enumerate(histories) if len(items) >= 2], dtype=np.int64)
        if not len(self.users):
            raise DataError("no user has 2 or more training items: nothing to train a sequence model on")
        self.stream = EpochStream(len(self.users), batch_size, seed, grad_accum)

    def _windows(self, users: np.ndarray, gen: torch.Generator) -> list[np.ndarray]:
        """Each row's item window: ``max_len + 1`` items for next-item inputs/targets, ``max_len`` masked."""
        span = self.max_len + 1 if self.mode == "next" else self.max_len
        out = []
        for u in users.tolist():
            items = self.histories[u][0]
            end = len(items)
            if self.window == "random" and end > span:  # ends anywhere from the first full window to the last
                end = span + int(torch.randint(end - span + 1, (1,), generator=gen))
            out.append(np.asarray(items[max(0, end - span):end], dtype=np.int64))
        return out

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """The batch for (step, micro): the same arguments always give the same tensors and masks."""
        users = self.users[self.stream.indices(step, micro).numpy()]
        gen = _generator(batch_seed(self.seed, step, micro))
        windows = self._windows(users, gen)
        pad, length = self.n_items, self.max_len
        history = torch.full((len(users), length), pad, dtype=torch.long)
        target = torch.full((len(users), length), IGNORE, dtype=torch.long)
        for row, seq in enumerate(windows):
            seq_t = torch.from_numpy(seq)
            if self.mode == "next":
                k = len(seq) - 1
                history[row, length - k:], target[row, length - k:] = seq_t[:-1], seq_t[1:]
            else:
                history[row, length - len(seq):] = seq_t
        if self.mode == "masked":
            history, target = self._mask(history, gen)
        return {"user": torch.from_numpy(users), "history": history, "target": target}

    def _mask(self, history: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        real = history != self.n_items  # (B, L)
        masked = (torch.rand(history.shape, generator=gen) < self.mask_prob) & real
        masked[:, -1] = torch.rand(len(history), generator=gen) < self.last_mask_prob  # last is always real
        masked[:, -1] |= ~masked.any(dim=1)  # at least one prediction per row
        target = torch.where(masked, history, torch.full_like(history, IGNORE))
        return torch.where(masked, torch.full_like(history, self.n_items + 1), history), target


def ranking_targets(inter: Interactions, n_users: int) -> np.ndarray:
    """(U,) the held-out item of each user in ``inter`` (one row per user at most), -1 for users without."""
    targets = np.full(n_users, -1, dtype=np.int64)
    if len(np.unique(inter.user)) != len(inter):
        raise DataError("a held-out split has two items for one user; leave-last-out holds out one")
    targets[inter.user] = inter.item
    return targets


def ranking_inputs(split: Split, n_users: int, stage: Literal["validation", "test"]
                   ) -> tuple[list[History], np.ndarray]:
    """(histories, targets (U,)) for ranking ``stage``: validation ranks the validation item after the
    training history; test ranks the test item after training + validation (everything before it)."""
    if stage == "validation":
        return user_histories(split.train, n_users), ranking_targets(split.validation, n_users)
    if stage != "test":
        raise ValueError(f"stage must be validation or test, got {stage!r}")
    known = Interactions(*(np.concatenate([getattr(split.train, f), getattr(split.validation, f)])
                           for f in ("user", "item", "rating", "timestamp")))
    return user_histories(known, n_users), ranking_targets(split.test, n_users)


class RankingBatches:
    """Evaluation / recommendation rows in a fixed order: the users with a target (``targets[u] >= 0``),
    ascending, ``batch_size`` per batch (the last may be short). ``len()`` is the number of batches."""

    def __init__(self, histories: list[History], targets: np.ndarray, n_items: int, max_len: int,
                 batch_size: int) -> None:
        _check_sizes(batch_size, 1)
        self.histories, self.n_items, self.max_len, self.batch_size = histories, n_items, max_len, batch_size
        self.targets = np.asarray(targets, dtype=np.int64)
        self.users = np.flatnonzero(self.targets >= 0).astype(np.int64)  # (U',)

    def __len__(self) -> int:
        return math.ceil(len(self.users) / self.batch_size)

    def batch_users(self, index: int) -> np.ndarray:
        """Dense user indices of batch ``index`` (wraps around past the end, like evaluation batches)."""
        i = index % max(len(self), 1)
        return self.users[i * self.batch_size:(i + 1) * self.batch_size]

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """Batch number ``step`` (``micro`` is ignored: evaluation batches are fixed)."""
        users = self.batch_users(step)
        history, rating = pad_histories(self.histories, users, self.max_len, self.n_items)
        return {"user": torch.from_numpy(users), "history": history, "history_rating": rating,
                "target": torch.from_numpy(self.targets[users])}

    def seen_mask(self, index: int) -> torch.Tensor:
        """(B, I) True at every item the batch's users rated before the target (their whole history)."""
        users = self.batch_users(index)
        mask = torch.zeros(len(users), self.n_items, dtype=torch.bool)
        for row, u in enumerate(users.tolist()):
            mask[row, torch.from_numpy(np.asarray(self.histories[u][0], dtype=np.int64))] = True
        return mask
