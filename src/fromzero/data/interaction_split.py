"""Leave-last-out by time: each user's last rating is the test item, the one before it validation.

Per user, ratings are ordered by timestamp; ratings with the same timestamp (MovieLens users often rate
several films in the same second) are ordered by a permutation drawn from the seed, so the split is a
function of (data, seed) and two seeds differ only among tied ratings. The last rating goes to test,
the second to last to validation, the rest to train, so no training rating is later than that user's
validation or test rating (no future leaks into training). Users with fewer than 3 ratings keep all of
them in train: holding one out would leave them nothing (or only one rating) to learn from; they are
simply not evaluated.

The split is saved in the run directory as CSV, ``userId,movieId,rating,timestamp,split`` with original
ids (split = train | validation | test), so anyone can rescore the same split; :func:`read_split` checks a
file against the data it claims to split.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fromzero.atomic import write_text
from fromzero.data.interactions import Catalogue, Interactions, RatingData, rating_data_from_arrays
from fromzero.errors import DataError

SPLITS = ("train", "validation", "test")
COLUMNS = ("userId", "movieId", "rating", "timestamp", "split")
MIN_RATINGS = 3  # users with fewer keep everything in train


@dataclass(frozen=True)
class Split:
    """Three disjoint sets of rating events (rows in per-user time order)."""

    train: Interactions
    validation: Interactions
    test: Interactions

    def part(self, name: str) -> Interactions:
        """The split called ``name`` (train | validation | test)."""
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]


def time_order(inter: Interactions, seed: int) -> np.ndarray:
    """Row order (N,) sorting by (user, timestamp), ties broken by a permutation drawn from ``seed``."""
    tiebreak = np.random.default_rng(seed).permutation(len(inter))  # (N,)
    return np.lexsort((tiebreak, inter.timestamp, inter.user))


def leave_last_out(data: RatingData, seed: int) -> Split:
    """Split each user's time-ordered ratings: last -> test, second to last -> validation, rest -> train
    (users with fewer than 3 ratings: all train). See the module docstring."""
    inter = data.interactions
    order = time_order(inter, seed)
    user = inter.user[order]  # (N,) grouped by user, time-ordered within
    counts = np.bincount(user, minlength=data.n_users)  # (U,)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    from_end = counts[user] - 1 - (np.arange(len(user)) - starts[user])  # 0 = the user's last rating
    held = counts[user] >= MIN_RATINGS
    test = held & (from_end == 0)
    validation = held & (from_end == 1)
    train = ~(test | validation)
    return Split(inter.take(order[train]), inter.take(order[validation]), inter.take(order[test]))


def user_histories(inter: Interactions, n_users: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per user (index u), the (items int64, ratings float32) of ``inter`` ordered by time; ties keep the
    order of ``inter`` (a split's own order, so its seeded tie-break holds). Users without rows get
    empty arrays."""
    order = np.lexsort((np.arange(len(inter)), inter.timestamp, inter.user))
    user, item, rating = inter.user[order], inter.item[order], inter.rating[order]
    bounds = np.searchsorted(user, np.arange(n_users + 1))  # (U + 1,)
    return [(item[bounds[u]:bounds[u + 1]].astype(np.int64), rating[bounds[u]:bounds[u + 1]].astype(np.float32))
            for u in range(n_users)]


def write_split(path: str | Path, data: RatingData, split: Split) -> None:
    """Write the split as CSV (original ids; train, then validation, then test rows), atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for name in SPLITS:
        part = split.part(name)
        users, items = data.user_ids[part.user], data.catalogue.item_ids[part.item]
        for u, i, r, t in zip(users.tolist(), items.tolist(), part.rating.tolist(), part.timestamp.tolist(),
                              strict=True):
            writer.writerow((u, i, repr(float(r)), t, name))  # repr: float32 ratings read back exactly
    write_text(path, out.getvalue())


def _parse_row(fields: list[str], where: str) -> tuple[int, int, float, int, str]:
    if len(fields) != len(COLUMNS):
        raise DataError(f"{where}: expected {len(COLUMNS)} fields ({','.join(COLUMNS)}), got {len(fields)}; "
                        "rewrite the split file")
    try:
        user, item, rating, stamp = int(fields[0]), int(fields[1]), float(fields[2]), int(fields[3])
    except ValueError:
        raise DataError(f"{where}: a non-numeric userId, movieId, rating or timestamp; rewrite the split "
                        "file") from None
    if fields[4] not in SPLITS:
        raise DataError(f"{where}: split {fields[4]!r} is not one of {', '.join(SPLITS)}")
    return user, item, rating, stamp, fields[4]


def read_split(path: str | Path, data: RatingData) -> Split:
    """Read a split file written by :func:`write_split` for ``data``. Every row must be a rating event of
    ``data`` (same user, item, rating and timestamp), each exactly once: a file from other data, an edited
    row or a lost row is a one-line :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no split file; make the split again (leave_last_out) or restore the file")
    inter = data.interactions
    key = inter.user * data.n_items + inter.item  # (N,) one number per (user, item)
    row_of = {int(k): n for n, k in enumerate(key)}
    users = {int(u): n for n, u in enumerate(data.user_ids)}
    items = {int(i): n for n, i in enumerate(data.catalogue.item_ids)}
    rows: dict[str, list[int]] = {name: [] for name in SPLITS}
    first: dict[int, int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        if tuple(next(reader, [])) != COLUMNS:
            raise DataError(f"{path}:1: the header must be {','.join(COLUMNS)}; this is not a split file")
        for fields in reader:
            where = f"{path}:{reader.line_num}"
            user, item, rating, stamp, name = _parse_row(fields, where)
            u, i = users.get(user), items.get(item)
            n = -1 if u is None or i is None else row_of.get(u * data.n_items + i, -1)
            if n < 0:
                raise DataError(f"{where}: user {user} never rated movieId {item} in this data; the split file "
                                "belongs to other data")
            if inter.timestamp[n] != stamp or not np.isclose(inter.rating[n], rating):
                raise DataError(f"{where}: rating or timestamp differs from the data's; the split file belongs "
                                "to other data")
            if n in first:
                raise DataError(f"{where}: user {user}, movieId {item} is listed twice (first on line "
                                f"{first[n]}); rewrite the split file")
            first[n] = reader.line_num
            rows[name].append(n)
    if len(first) != len(inter):
        raise DataError(f"{path}: holds {len(first)} of the data's {len(inter)} ratings; the split file is "
                        "incomplete or belongs to other data")
    return Split(*(inter.take(np.asarray(rows[name], dtype=np.int64)) for name in SPLITS))


def read_split_file(path: str | Path, catalogue: Catalogue, rating_range: tuple[float, float]
                    ) -> tuple[RatingData, Split]:
    """A run directory's split file on its own: the ratings it lists (over ``catalogue``) and their split."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no split file; the run directory is incomplete")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        if tuple(next(reader, [])) != COLUMNS:
            raise DataError(f"{path}:1: the header must be {','.join(COLUMNS)}; this is not a split file")
        rows = [_parse_row(fields, f"{path}:{reader.line_num}") for fields in reader]
    if not rows:
        raise DataError(f"{path}: no ratings; the run directory is damaged")
    users, items, ratings, stamps, _ = zip(*rows, strict=True)
    data = rating_data_from_arrays(catalogue, np.asarray(users), np.asarray(items), np.asarray(ratings),
                                   np.asarray(stamps), rating_range, str(path))
    return data, read_split(path, data)

