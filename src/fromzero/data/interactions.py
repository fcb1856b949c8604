"""Rating data for recommenders: a catalogue of items, users, and time-stamped rating events.

Ids are remapped to dense indices: users ``0..U-1`` (original ids ascending), items ``0..I-1`` where
``I`` is the whole catalogue (original ids ascending), so an item nobody rated in training is still an
index (a cold-start item). ``PAD = n_items`` pads histories and ``MASK = n_items + 1`` is BERT4Rec's
mask token.

CSV inputs (your own data, and a user's own ratings for ``fromzero recommend --ratings``):

    items:    movieId,title,genres[,year]        genres "Comedy|Romance"; "(no genres listed)" = none
    ratings:  userId,movieId,rating,timestamp    timestamp in seconds (Unix time)

Every bad row is a one-line :class:`~fromzero.errors.DataError` naming the file and line and the fix.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fromzero.atomic import write_text
from fromzero.errors import DataError

NO_GENRES = "(no genres listed)"
ITEM_COLUMNS = ("movieId", "title", "genres")
RATING_COLUMNS = ("userId", "movieId", "rating", "timestamp")


@dataclass(frozen=True)
class Catalogue:
    """Every item; index ``i`` is dense item ``i``."""

    item_ids: np.ndarray  # (I,) int64 original ids (movieId), ascending
    titles: list[str]
    years: list[int | None]
    genres: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.item_ids)

    def dense(self, ids: np.ndarray) -> np.ndarray:
        """Original item ids (N,) -> dense indices (N,) int64; -1 where an id is not in the catalogue."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.item_ids, ids).clip(max=max(len(self.item_ids) - 1, 0))
        found = len(self.item_ids) > 0 and self.item_ids[pos] == ids
        return np.where(found, pos, -1).astype(np.int64)


@dataclass(frozen=True)
class Interactions:
    """Rating events, one row per (user, item): dense indices, the rating and its time."""

    user: np.ndarray  # (N,) int64 dense user index
    item: np.ndarray  # (N,) int64 dense item index
    rating: np.ndarray  # (N,) float32
    timestamp: np.ndarray  # (N,) int64 seconds

    def __len__(self) -> int:
        return len(self.user)

    def take(self, rows: np.ndarray) -> Interactions:
        """The rows ``rows`` (indices or a boolean mask), in that order."""
        return Interactions(self.user[rows], self.item[rows], self.rating[rows], self.timestamp[rows])


@dataclass(frozen=True)
class RatingData:
    """A catalogue, its users and their rating events."""

    catalogue: Catalogue
    user_ids: np.ndarray  # (U,) int64 original ids, ascending
    interactions: Interactions
    rating_range: tuple[float, float]  # (0.5, 5.0) for MovieLens

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.catalogue)


def split_genres(text: str) -> tuple[str, ...]:
    """``"Comedy|Romance"`` -> ``("Comedy", "Romance")``; ``"(no genres listed)"`` or empty -> ``()``."""
    if text.strip() in ("", NO_GENRES):
        return ()
    return tuple(g.strip() for g in text.split("|") if g.strip())


def rating_data_from_arrays(catalogue: Catalogue, user_ids: np.ndarray, item_ids: np.ndarray, rating: np.ndarray,
                            timestamp: np.ndarray, rating_range: tuple[float, float], source: str) -> RatingData:
    """Original ids per event (N,) -> :class:`RatingData` with dense indices (users: the distinct ids
    ascending), rows sorted by (user, timestamp, item) so equal inputs give equal data whatever their order.
    Used by every rating source (MovieLens, CSV); ``source`` names the data in errors."""
    users = np.unique(np.asarray(user_ids, dtype=np.int64))  # (U,)
    user = np.searchsorted(users, np.asarray(user_ids, dtype=np.int64)).astype(np.int64)
    item = catalogue.dense(item_ids)
    if (item < 0).any():
        bad = np.asarray(item_ids)[item < 0][0]
        raise DataError(f"{source}: movieId {bad} is rated but not in the catalogue; add it to the items")
    pairs = user * max(len(catalogue), 1) + item
    if len(np.unique(pairs)) != len(pairs):
        raise DataError(f"{source}: a (userId, movieId) pair is rated twice; keep one rating per pair")
    order = np.lexsort((item, np.asarray(timestamp, dtype=np.int64), user))
    inter = Interactions(user[order], item[order], np.asarray(rating, dtype=np.float32)[order],
                         np.asarray(timestamp, dtype=np.int64)[order])
    return RatingData(catalogue, users, inter, (float(rating_range[0]), float(rating_range[1])))


def rating_data_from_csv(ratings: str | Path, items: str | Path,
                         rating_range: tuple[float, float] = (0.5, 5.0)) -> RatingData:
    """``data.source: csv``: an items file and a ratings file -> :class:`RatingData`."""
    catalogue = read_items_csv(items)
    user_ids, inter = read_ratings_csv(ratings, catalogue=catalogue, rating_range=rating_range)
    return rating_data_from_arrays(catalogue, user_ids[inter.user], catalogue.item_ids[inter.item], inter.rating,
                                   inter.timestamp, rating_range, str(ratings))


# ---- CSV readers --------------------------------------------------------------------------------------------


def _rows(path: Path, required: tuple[str, ...], fix: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: text}) for each non-blank data row; checks the file and the header."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; {fix}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}:1: the file is empty; it needs the header {','.join(required)} and rows")
        header = [h.strip() for h in header]
        for name in required:
            if name not in header:
                raise DataError(f"{path}:1: missing column {name!r}; the header must hold {','.join(required)}"
                                f" (found {','.join(header)})")
        col = {name: header.index(name) for name in header}
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            yield reader.line_num, {name: (fields[i].strip() if i < len(fields) else "") for name, i in col.items()}


def _integer(row: dict[str, str], name: str, where: str) -> int:
    text = row[name]
    if text == "":
        raise DataError(f"{where}: missing {name}; every row needs one")
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise DataError(f"{where}: {name} {text!r} is not a whole number; write it as an integer") from None


def read_items_csv(path: str | Path) -> Catalogue:
    """Items file ``movieId,title,genres[,year]`` -> :class:`Catalogue` sorted by movieId."""
    path = Path(path)
    found: dict[int, tuple[str, int | None, tuple[str, ...]]] = {}
    first_line: dict[int, int] = {}
    for line, row in _rows(path, ITEM_COLUMNS, "give the items file (movieId,title,genres[,year])"):
        where = f"{path}:{line}"
        item = _integer(row, "movieId", where)
        if item in found:
            raise DataError(f"{where}: movieId {item} is listed twice (first on line {first_line[item]}); "
                            "keep one row per item")
        year = _integer(row, "year", where) if row.get("year") else None
        found[item], first_line[item] = (row["title"], year, split_genres(row["genres"])), line
    if not found:
        raise DataError(f"{path}: no items (only a header); add one row per item")
    ids = sorted(found)
    return Catalogue(np.asarray(ids, dtype=np.int64), [found[i][0] for i in ids], [found[i][1] for i in ids],
                     [found[i][2] for i in ids])


def write_items_csv(path: str | Path, catalogue: Catalogue) -> None:
    """The catalogue as an items file (``movieId,title,genres,year``) that :func:`read_items_csv` reads back."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("movieId", "title", "genres", "year"))
    for item, title, genres, year in zip(catalogue.item_ids.tolist(), catalogue.titles, catalogue.genres,
                                         catalogue.years, strict=True):
        writer.writerow((item, title, "|".join(genres), "" if year is None else year))
    write_text(path, out.getvalue())


def _rating(row: dict[str, str], where: str, rating_range: tuple[float, float]) -> float:
    text = row["rating"]
    try:
        value = float(text)
    except ValueError:
        what = "missing rating" if text == "" else f"rating {text!r} is not a number"
        raise DataError(f"{where}: {what}; write a number from {rating_range[0]:g} to {rating_range[1]:g}") from None
    if not (rating_range[0] <= value <= rating_range[1]):  # also catches nan
        raise DataError(f"{where}: rating {text} is outside {rating_range[0]:g}..{rating_range[1]:g}; "
                        "fix the rating")
    return value


def _check_user(user: int, where: str, expected_user: int | None, known: set[int] | None) -> None:
    if expected_user is not None and user != expected_user:
        raise DataError(f"{where}: unknown user {user}: this file holds user {expected_user}'s ratings; "
                        "remove the row or give that user's own file")
    if known is not None and user not in known:
        raise DataError(f"{where}: unknown user {user}: not among this data's users; fix the userId")


def read_ratings_csv(path: str | Path, *, catalogue: Catalogue, user_ids: np.ndarray | None = None,
                     expected_user: int | None = None, rating_range: tuple[float, float] = (0.5, 5.0),
                     ) -> tuple[np.ndarray, Interactions]:
    """Ratings file ``userId,movieId,rating,timestamp`` -> (original user ids (U,) ascending, Interactions),
    ``Interactions.user`` indexing those ids and ``.item`` the catalogue, rows in file order.

    ``user_ids``: the users allowed (returned as given; a userId outside them is an error).
    ``expected_user``: the file is that one user's ratings (``recommend --ratings``); another userId is an
    error. Any bad row (non-numeric field, missing timestamp, rating out of range, a repeated (userId,
    movieId) pair, an unknown movieId) is a one-line :class:`DataError` naming the file and line."""
    path = Path(path)
    known = None if user_ids is None else set(np.asarray(user_ids).tolist())
    index = {int(item): i for i, item in enumerate(catalogue.item_ids)}
    seen: dict[tuple[int, int], int] = {}
    users, items, ratings, times = [], [], [], []
    for line, row in _rows(path, RATING_COLUMNS, "give the ratings file (userId,movieId,rating,timestamp)"):
        where = f"{path}:{line}"
        user, item = _integer(row, "userId", where), _integer(row, "movieId", where)
        rating = _rating(row, where, rating_range)
        if row["timestamp"] == "":
            raise DataError(f"{where}: missing timestamp; every rating needs its time in Unix seconds")
        stamp = _integer(row, "timestamp", where)
        _check_user(user, where, expected_user, known)
        if item not in index:
            raise DataError(f"{where}: unknown item movieId {item}: not in the catalogue; fix the movieId or "
                            "add the item")
        if (user, item) in seen:
            raise DataError(f"{where}: duplicate rating of movieId {item} by user {user} (first on line "
                            f"{seen[user, item]}); keep one rating per pair")
        seen[user, item] = line
        users.append(user)
        items.append(index[item])
        ratings.append(rating)
        times.append(stamp)
    if not users:
        raise DataError(f"{path}: no ratings (only a header); add rows userId,movieId,rating,timestamp")
    original = np.asarray(users, dtype=np.int64)
    ids = np.unique(original) if user_ids is None else np.asarray(user_ids, dtype=np.int64)
    dense = np.searchsorted(ids, original) if user_ids is None else _positions(ids, original)
    return ids, Interactions(dense.astype(np.int64), np.asarray(items, dtype=np.int64),
                             np.asarray(ratings, dtype=np.float32), np.asarray(times, dtype=np.int64))


def _positions(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in ``ids`` (any order; every value is present)."""
    lookup = {int(v): i for i, v in enumerate(ids)}
    return np.asarray([lookup[int(v)] for v in values], dtype=np.int64)
