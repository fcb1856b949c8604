"""Recommender batches: pure functions of (seed, step, micro) (resume is exact, negatives included), each
compared with a naive per-row construction; negatives are never training positives; the seen mask is the
whole history."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fromzero.data.interaction_split import leave_last_out, user_histories
from fromzero.data.interactions import Catalogue, Interactions, rating_data_from_arrays
from fromzero.data.recsys_batches import (
    IGNORE,
    PairBatches,
    RankingBatches,
    RatingBatches,
    SequenceBatches,
    pad_histories,
    ranking_inputs,
)
from fromzero.errors import DataError

N_USERS, N_ITEMS = 9, 25


def _train() -> Interactions:
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(N_USERS):
        k = [1, 2, 3, 6, 9, 12, 15, 18, 20][u]
        users += [u] * k
        items += rng.choice(N_ITEMS, k, replace=False).tolist()
    n = len(users)
    return Interactions(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64),
                        (rng.integers(1, 11, n) / 2).astype(np.float32), rng.integers(0, 1000, n).astype(np.int64))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _naive_history(items: list[int], length: int, pad: int) -> list[int]:
    items = items[-length:]
    return [pad] * (length - len(items)) + items


def test_rating_batches_cover_an_epoch_and_are_pure() -> None:
    train = _train()
    src = RatingBatches(train, batch_size=7, seed=3)
    n = len(train)
    seen = [(int(u), int(i)) for s in range(n // 7) for u, i in zip(src.batch(s)["user"], src.batch(s)["item"],
                                                                    strict=True)]
    assert len(set(seen)) == len(seen) == (n // 7) * 7  # no rating twice within one epoch
    assert _same(src.batch(5), src.batch(5)) and _same(src.batch(5), RatingBatches(train, 7, seed=3).batch(5))
    assert not _same(src.batch(5), RatingBatches(train, 7, seed=4).batch(5))
    accum = RatingBatches(train, 7, seed=3, grad_accum=2)
    assert _same(accum.batch(2, 1), src.batch(5))  # micro-batch 2 * 2 + 1 of the same stream
    b = src.batch(0)
    pairs = dict(zip(zip(train.user.tolist(), train.item.tolist(), strict=True), train.rating.tolist(), strict=True))
    assert b["rating"].dtype == torch.float32
    assert b["rating"].tolist() == [pairs[u, i] for u, i in zip(b["user"].tolist(), b["item"].tolist(), strict=True)]


def test_pair_batches_negatives_histories_and_purity() -> None:
    train = _train()
    src = PairBatches(train, N_USERS, N_ITEMS, batch_size=16, n_neg=4, max_len=5, seed=1)
    rated = set(zip(train.user.tolist(), train.item.tolist(), strict=True))
    hist = user_histories(train, N_USERS)
    counts = torch.zeros(N_ITEMS)
    for step in range(40):
        b = src.batch(step)
        assert b["negative"].shape == (16, 4) and b["history"].shape == (16, 5)
        for u, pos, negs, h, hr in zip(*(b[k].tolist() for k in ("user", "item", "negative", "history",
                                                                  "history_rating")), strict=True):
            assert (u, pos) in rated and not any((u, n) in rated for n in negs)
            items, ratings = hist[u][0].tolist(), hist[u][1].tolist()
            keep = [k for k, it in enumerate(items) if it != pos]
            assert h == _naive_history([items[k] for k in keep], 5, N_ITEMS)
            assert hr == [0.0] * (5 - min(len(keep), 5)) + [ratings[k] for k in keep][-5:]
            if u == N_USERS - 1:
                counts[negs] += 1
    allowed = [i for i in range(N_ITEMS) if (N_USERS - 1, i) not in rated]
    assert counts[allowed].min() > 0 and counts.sum() == counts[allowed].sum()  # every allowed item, nothing else
    fresh = PairBatches(train, N_USERS, N_ITEMS, batch_size=16, n_neg=4, max_len=5, seed=1)
    assert _same(src.batch(17), src.batch(17)) and _same(src.batch(17), fresh.batch(17))
    other = PairBatches(train, N_USERS, N_ITEMS, batch_size=16, n_neg=4, max_len=5, seed=2)
    assert not torch.equal(other.batch(17)["negative"], src.batch(17)["negative"])


def test_negatives_are_uniform_over_unrated_items() -> None:
    # user 0 rated items 0..3 of 8: negatives must be uniform over 4..7 (expected 2,500 each of 10,000)
    train = Interactions(np.zeros(4, dtype=np.int64), np.arange(4), np.ones(4, dtype=np.float32),
                         np.arange(4))
    src = PairBatches(train, 1, 8, batch_size=4, n_neg=2500, max_len=2, seed=0)
    neg = src.batch(0)["negative"].flatten()
    freq = torch.bincount(neg, minlength=8)
    assert freq[:4].sum() == 0 and (freq[4:] - 2500).abs().max() < 200  # ~4 standard deviations
    with pytest.raises(DataError, match="rated every item"):
        PairBatches(train, 1, 4, batch_size=4)


def test_sequence_batches_next_item() -> None:
    train = _train()
    hist = user_histories(train, N_USERS)
    src = SequenceBatches(hist, N_ITEMS, max_len=4, batch_size=5, seed=0)
    assert sorted(src.users.tolist()) == list(range(1, N_USERS))  # user 0 has one item only
    for step in range(6):
        b = src.batch(step)
        for u, h, t in zip(b["user"].tolist(), b["history"].tolist(), b["target"].tolist(), strict=True):
            items = hist[u][0].tolist()[-5:]
            assert h == _naive_history(items[:-1], 4, N_ITEMS)
            assert t == [IGNORE] * (5 - len(items)) + items[1:]
    fresh = SequenceBatches(hist, N_ITEMS, max_len=4, batch_size=5, seed=0)
    assert _same(src.batch(3), src.batch(3)) and _same(src.batch(3), fresh.batch(3))


def test_sequence_batches_random_window_is_a_contiguous_slice() -> None:
    hist = user_histories(_train(), N_USERS)
    src = SequenceBatches(hist, N_ITEMS, max_len=4, batch_size=8, window="random", seed=0)
    starts = set()
    for step in range(10):
        b = src.batch(step)
        for u, h, t in zip(b["user"].tolist(), b["history"].tolist(), b["target"].tolist(), strict=True):
            seq = [x for x in h if x != N_ITEMS] + [t[-1]]
            items = hist[u][0].tolist()
            n = len(seq)
            matches = [s for s in range(len(items) - n + 1) if items[s:s + n] == seq]
            assert matches and n == min(len(items), 5)
            starts.add((u, matches[0]))
    assert len(starts) > N_USERS  # windows move


def test_sequence_batches_masked() -> None:
    hist = user_histories(_train(), N_USERS)
    mask_token = N_ITEMS + 1
    src = SequenceBatches(hist, N_ITEMS, max_len=6, batch_size=8, mode="masked", mask_prob=0.3, seed=0)
    n_masked = n_real = n_last = rows = 0
    for step in range(150):
        b = src.batch(step)
        for u, h, t in zip(b["user"].tolist(), b["history"].tolist(), b["target"].tolist(), strict=True):
            original = _naive_history(hist[u][0].tolist(), 6, N_ITEMS)
            masked = [k for k in range(6) if h[k] == mask_token]
            assert masked and all(t[k] == original[k] for k in masked)
            assert all(h[k] == original[k] and t[k] == IGNORE for k in range(6) if k not in masked)
            n_masked += sum(1 for k in masked if k < 5)
            n_real += sum(1 for k in range(5) if original[k] != N_ITEMS)
            n_last, rows = n_last + (5 in masked), rows + 1
    assert abs(n_masked / n_real - 0.3) < 0.03
    # last position: masked with p = 0.5, or when nothing else is: 0.5 + 0.5 * P(no other mask) > 0.5
    assert 0.5 < n_last / rows < 0.7
    assert _same(src.batch(9), SequenceBatches(hist, N_ITEMS, max_len=6, batch_size=8, mode="masked",
                                               mask_prob=0.3, seed=0).batch(9))


def test_ranking_batches_and_seen_mask() -> None:
    ids = np.arange(N_ITEMS)
    cat = Catalogue(ids, [str(i) for i in ids], [None] * N_ITEMS, [()] * N_ITEMS)
    t = _train()
    data = rating_data_from_arrays(cat, t.user, t.item, t.rating, t.timestamp, (0.5, 5.0), "test")
    split = leave_last_out(data, seed=0)
    histories, targets = ranking_inputs(split, N_USERS, "test")
    src = RankingBatches(histories, targets, N_ITEMS, max_len=3, batch_size=3)
    with_target = [u for u in range(N_USERS) if (split.test.user == u).any()]
    assert len(src) == -(-len(with_target) // 3)
    assert targets[[0, 1]].tolist() == [-1, -1]  # fewer than 3 ratings: not evaluated
    for index in range(len(src)):
        b, seen = src.batch(index), src.seen_mask(index)
        for row, u in enumerate(b["user"].tolist()):
            train_items = split.train.item[split.train.user == u]
            val_item = int(split.validation.item[split.validation.user == u][0])
            assert b["history"][row, -1] == val_item  # the most recent item before the test item
            assert b["target"][row] == int(split.test.item[split.test.user == u][0])
            expected = torch.zeros(N_ITEMS, dtype=torch.bool)
            expected[train_items.tolist() + [val_item]] = True
            assert torch.equal(seen[row], expected)  # the whole history, not only the last max_len
            assert not seen[row, b["target"][row]]
    val_hist, val_targets = ranking_inputs(split, N_USERS, "validation")
    items, ratings = pad_histories(val_hist, np.array([8]), 30, N_ITEMS)
    train8 = split.train.item[split.train.user == 8]
    assert items[0].tolist() == [N_ITEMS] * (30 - len(train8)) + val_hist[8][0].tolist()
    assert sorted(val_hist[8][0].tolist()) == sorted(train8.tolist()) and (ratings[0, :30 - len(train8)] == 0).all()
    assert val_targets[8] == split.validation.item[split.validation.user == 8][0]
