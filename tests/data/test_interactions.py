"""Rating data: items and ratings CSV files -> dense indices (checked against hand-written expectations), and
every bad input is a one-line DataError naming the file and the line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fromzero.data.interactions import (
    Catalogue,
    rating_data_from_csv,
    read_items_csv,
    read_ratings_csv,
    split_genres,
)
from fromzero.errors import DataError

ITEMS = """movieId,title,genres,year
30,"Heat, Part One",Action|Crime,1995
10,Toy Story,Adventure|Animation,
20,Nothing,(no genres listed),2001
40,Cold Start,Drama,1999
"""
RATINGS = """userId,movieId,rating,timestamp
7,10,4.0,100
3,20,2.5,50
7,30,5,90

3,10,0.5,60
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    return read_items_csv(_write(tmp_path, "items.csv", ITEMS))


def test_items_are_sorted_with_genres_and_years(catalogue: Catalogue) -> None:
    assert catalogue.item_ids.tolist() == [10, 20, 30, 40]
    assert catalogue.titles == ["Toy Story", "Nothing", "Heat, Part One", "Cold Start"]
    assert catalogue.years == [None, 2001, 1995, 1999]
    assert catalogue.genres == [("Adventure", "Animation"), (), ("Action", "Crime"), ("Drama",)]
    assert catalogue.dense(np.array([30, 11, 10, 99])).tolist() == [2, -1, 0, -1]
    assert split_genres("Comedy|Romance") == ("Comedy", "Romance") and split_genres("(no genres listed)") == ()


def test_ratings_file_reads_in_file_order(tmp_path: Path, catalogue: Catalogue) -> None:
    users, inter = read_ratings_csv(_write(tmp_path, "r.csv", RATINGS), catalogue=catalogue)
    assert users.tolist() == [3, 7]
    assert inter.user.tolist() == [1, 0, 1, 0]
    assert inter.item.tolist() == [0, 1, 2, 0]
    assert inter.rating.tolist() == [4.0, 2.5, 5.0, 0.5] and inter.rating.dtype == np.float32
    assert inter.timestamp.tolist() == [100, 50, 90, 60] and inter.timestamp.dtype == np.int64
    # a given user list keeps its indexing
    users2, inter2 = read_ratings_csv(tmp_path / "r.csv", catalogue=catalogue, user_ids=np.array([1, 3, 7, 9]))
    assert users2.tolist() == [1, 3, 7, 9] and inter2.user.tolist() == [2, 1, 2, 1]


def test_rating_data_from_csv_has_dense_sorted_rows_and_cold_items(tmp_path: Path) -> None:
    data = rating_data_from_csv(_write(tmp_path, "r.csv", RATINGS), _write(tmp_path, "i.csv", ITEMS))
    assert data.n_users == 2 and data.n_items == 4 and data.rating_range == (0.5, 5.0)
    inter = data.interactions  # sorted by (user, timestamp): user 3 at 50, 60; user 7 at 90, 100
    assert list(zip(inter.user.tolist(), inter.item.tolist(), inter.timestamp.tolist(), strict=True)) == [
        (0, 1, 50), (0, 0, 60), (1, 2, 90), (1, 0, 100)]
    assert 3 not in inter.item  # movie 40 is in the catalogue, rated by nobody: a cold-start item


def test_own_ratings_file_of_one_user(tmp_path: Path, catalogue: Catalogue) -> None:
    path = _write(tmp_path, "mine.csv", "userId,movieId,rating,timestamp\n7,10,4,1\n7,40,3.5,2\n")
    users, inter = read_ratings_csv(path, catalogue=catalogue, expected_user=7)
    assert users.tolist() == [7] and inter.item.tolist() == [0, 3]


BAD = [
    ("userId,movieId,rating\n1,10,4\n", "r.csv:1: missing column 'timestamp'", {}),
    ("", "r.csv:1: the file is empty", {}),
    ("userId,movieId,rating,timestamp\n", "r.csv: no ratings", {}),
    ("userId,movieId,rating,timestamp\n1,10,4,5\nx,10,4,5\n", "r.csv:3: userId 'x' is not a whole number", {}),
    ("userId,movieId,rating,timestamp\n1,10,four,5\n", "r.csv:2: rating 'four' is not a number", {}),
    ("userId,movieId,rating,timestamp\n1,10,4,\n", "r.csv:2: missing timestamp", {}),
    ("userId,movieId,rating,timestamp\n1,10,4\n", "r.csv:2: missing timestamp", {}),
    ("userId,movieId,rating,timestamp\n1,10,5.5,3\n", r"r.csv:2: rating 5.5 is outside 0.5..5", {}),
    ("userId,movieId,rating,timestamp\n1,10,0,3\n", r"r.csv:2: rating 0 is outside 0.5..5", {}),
    ("userId,movieId,rating,timestamp\n1,10,4,3\n1,20,4,3\n1,10,3,9\n",
     r"r.csv:4: duplicate rating of movieId 10 by user 1 \(first on line 2\)", {}),
    ("userId,movieId,rating,timestamp\n1,11,4,3\n", "r.csv:2: unknown item movieId 11", {}),
    ("userId,movieId,rating,timestamp\n7,10,4,3\n8,20,4,3\n",
     "r.csv:3: unknown user 8: this file holds user 7's ratings", {"expected_user": 7}),
    ("userId,movieId,rating,timestamp\n7,10,4,3\n8,20,4,3\n", "r.csv:3: unknown user 8",
     {"user_ids": np.array([3, 7])}),
]


@pytest.mark.parametrize(("text", "message", "kwargs"), BAD, ids=[m.split(": ", 1)[1][:30] for _, m, _ in BAD])
def test_bad_ratings_are_one_line_errors(tmp_path: Path, catalogue: Catalogue, text: str, message: str,
                                         kwargs: dict) -> None:
    path = _write(tmp_path, "r.csv", text)
    with pytest.raises(DataError, match=message) as err:
        read_ratings_csv(path, catalogue=catalogue, **kwargs)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_files_and_bad_items(tmp_path: Path, catalogue: Catalogue) -> None:
    with pytest.raises(DataError, match="nope.csv: no such file"):
        read_ratings_csv(tmp_path / "nope.csv", catalogue=catalogue)
    with pytest.raises(DataError, match="nope.csv: no such file"):
        read_items_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="i.csv:3: movieId 10 is listed twice \\(first on line 2\\)"):
        read_items_csv(_write(tmp_path, "i.csv", "movieId,title,genres\n10,A,Drama\n10,B,Drama\n"))
    with pytest.raises(DataError, match="i.csv:1: missing column 'genres'"):
        read_items_csv(_write(tmp_path, "i.csv", "movieId,title\n10,A\n"))
    with pytest.raises(DataError, match="i.csv:2: year 'soon' is not a whole number"):
        read_items_csv(_write(tmp_path, "i.csv", "movieId,title,genres,year\n10,A,Drama,soon\n"))
    with pytest.raises(DataError, match="i.csv: no items"):
        read_items_csv(_write(tmp_path, "i.csv", "movieId,title,genres\n"))
