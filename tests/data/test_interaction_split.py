"""Leave-last-out by time: a hand-checked case, no leakage on random data full of timestamp ties, the seed
only reorders ties, and the split file round-trips (and rejects files that do not match the data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fromzero.data.interaction_split import leave_last_out, read_split, user_histories, write_split
from fromzero.data.interactions import Catalogue, Interactions, RatingData, rating_data_from_arrays
from fromzero.errors import DataError


def _data(users, items, ratings, stamps, n_items: int) -> RatingData:
    ids = np.arange(100, 100 + n_items)  # original movieIds differ from dense indices
    cat = Catalogue(ids, [f"m{i}" for i in ids], [None] * n_items, [()] * n_items)
    return rating_data_from_arrays(cat, np.asarray(users), ids[np.asarray(items)], np.asarray(ratings, float),
                                   np.asarray(stamps), (0.5, 5.0), "test")


def _random_data(seed: int = 0, n_users: int = 12, n_items: int = 30) -> RatingData:
    rng = np.random.default_rng(seed)
    users, items, stamps = [], [], []
    for u in range(n_users):
        k = int(rng.integers(1, 15))
        users += [u * 10] * k
        items += rng.choice(n_items, k, replace=False).tolist()
        stamps += rng.integers(0, 5, k).tolist()  # few distinct times: many ties
    ratings = rng.integers(1, 11, len(users)) / 2
    return _data(users, items, ratings, stamps, n_items)


def _triples(inter: Interactions) -> list[tuple[int, int, int]]:
    return list(zip(inter.user.tolist(), inter.item.tolist(), inter.timestamp.tolist(), strict=True))


def test_hand_checked_split() -> None:
    # user 5: four ratings at distinct times; user 9: two ratings only (kept in train); user 2: three
    data = _data([5, 5, 5, 5, 9, 9, 2, 2, 2], [0, 1, 2, 3, 0, 4, 4, 1, 0], [1, 2, 3, 4, 5, 1, 2, 3, 4],
                 [40, 10, 30, 20, 7, 3, 1, 2, 3], 5)
    split = leave_last_out(data, seed=0)  # dense users: 2 -> 0, 5 -> 1, 9 -> 2
    assert _triples(split.test) == [(0, 0, 3), (1, 0, 40)]
    assert _triples(split.validation) == [(0, 1, 2), (1, 2, 30)]
    assert _triples(split.train) == [(0, 4, 1), (1, 1, 10), (1, 3, 20), (2, 4, 3), (2, 0, 7)]
    assert split.test.rating.tolist() == [4.0, 1.0]


def test_no_leakage_and_nothing_lost() -> None:
    data = _random_data()
    split = leave_last_out(data, seed=3)
    parts = [split.train, split.validation, split.test]
    assert sum(len(p) for p in parts) == len(data.interactions)
    keys = [set(zip(p.user.tolist(), p.item.tolist(), strict=True)) for p in parts]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    counts = np.bincount(data.interactions.user, minlength=data.n_users)
    for u in range(data.n_users):
        train_t = split.train.timestamp[split.train.user == u]
        val_t = split.validation.timestamp[split.validation.user == u]
        test_t = split.test.timestamp[split.test.user == u]
        if counts[u] < 3:
            assert len(train_t) == counts[u] and len(val_t) == len(test_t) == 0
            continue
        assert len(val_t) == len(test_t) == 1
        assert (train_t <= val_t[0]).all() and val_t[0] <= test_t[0]


def test_seed_only_reorders_ties() -> None:
    data = _random_data(1)
    a, b = leave_last_out(data, seed=0), leave_last_out(data, seed=0)
    for name in ("train", "validation", "test"):
        assert _triples(a.part(name)) == _triples(b.part(name))
    inter = data.interactions
    changed = False
    for seed in range(1, 6):
        other = leave_last_out(data, seed)
        # the held-out timestamps never depend on the seed, only which of the tied items holds them
        assert other.test.timestamp.tolist() == a.test.timestamp.tolist()
        assert other.validation.timestamp.tolist() == a.validation.timestamp.tolist()
        for u, i_a, i_b, t in zip(a.test.user, a.test.item, other.test.item, a.test.timestamp, strict=True):
            if i_a != i_b:  # a different test item must share the timestamp (a tie)
                changed = True
                assert ((inter.user == u) & (inter.timestamp == t)).sum() >= 2
    assert changed, "with this many ties some seed must pick another test item"


def test_user_histories_match_a_naive_loop() -> None:
    data = _random_data(2)
    split = leave_last_out(data, seed=0)
    hist = user_histories(split.train, data.n_users)
    for u in range(data.n_users):
        pairs = enumerate(zip(split.train.user, split.train.timestamp, strict=True))
        rows = [(t, n) for n, (uu, t) in pairs if uu == u]
        order = [n for _, n in sorted(rows)]  # by time, then position (split order)
        assert hist[u][0].tolist() == split.train.item[order].tolist()
        assert hist[u][1].tolist() == split.train.rating[order].tolist() and hist[u][1].dtype == np.float32
    empty = user_histories(split.train, data.n_users + 2)
    assert len(empty[-1][0]) == 0 and empty[-1][0].dtype == np.int64


def test_split_file_round_trip(tmp_path: Path) -> None:
    data = _random_data(4)
    split = leave_last_out(data, seed=7)
    path = tmp_path / "split.csv"
    write_split(path, data, split)
    lines = path.read_text().splitlines()
    assert lines[0] == "userId,movieId,rating,timestamp,split" and len(lines) == len(data.interactions) + 1
    back = read_split(path, data)
    for name in ("train", "validation", "test"):
        assert _triples(back.part(name)) == _triples(split.part(name))
        assert back.part(name).rating.tolist() == split.part(name).rating.tolist()


def test_split_file_that_does_not_match_is_refused(tmp_path: Path) -> None:
    data = _random_data(5)
    path = tmp_path / "split.csv"
    write_split(path, data, leave_last_out(data, seed=0))
    good = path.read_text().splitlines()
    u, i, r, t, s = good[1].split(",")
    cases = {
        "never rated": [good[0], f"{u},9999,{r},{t},{s}"] + good[2:],
        "rating or timestamp differs": [good[0], f"{u},{i},{r},{int(t) + 1},{s}"] + good[2:],
        "listed twice": good + [good[1]],
        "holds": good[:-1],
        "split 'dev' is not one of": [good[0], f"{u},{i},{r},{t},dev"] + good[2:],
        "the header must be": ["user,item,rating,timestamp,split"] + good[1:],
    }
    for message, lines in cases.items():
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(DataError, match=message):
            read_split(path, data)
    with pytest.raises(DataError, match="no split file"):
        read_split(tmp_path / "none.csv", data)
