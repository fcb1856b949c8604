"""MovieLens small from Debian r-cran-dslabs: where it is looked for, the catalogue built from a data frame
(NA titles and years, no genres), and (when the data is installed) the real counts; without the data that
test skips, and under CI=true its absence is a failure (scripts/install_movielens.sh, run by
scripts/test.sh, fetches it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fromzero.data.datasets import movielens
from fromzero.data.datasets.movielens import catalogue_from_frame, find_dslabs, load_movielens
from fromzero.errors import DataError


def _fake_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "Rdata.rdb").write_bytes(b"")
    (root / "Rdata.rdx").write_bytes(b"")
    return root


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system, cache, env = tmp_path / "system", tmp_path / "cache", tmp_path / "env"
    monkeypatch.setattr(movielens, "SYSTEM_DIR", system)
    monkeypatch.setattr(movielens, "CACHE_DIR", cache)
    monkeypatch.delenv(movielens.ENV, raising=False)
    with pytest.raises(DataError, match="not found in .*run `bash scripts/install_movielens.sh`") as err:
        find_dslabs()
    assert "\n" not in str(err.value)
    _fake_dir(cache)
    assert find_dslabs() == cache
    _fake_dir(system)
    assert find_dslabs() == system
    monkeypatch.setenv(movielens.ENV, str(_fake_dir(env)))
    assert find_dslabs() == env
    given = _fake_dir(tmp_path / "given")
    assert find_dslabs(given) == given and find_dslabs(given / "Rdata.rdb") == given
    with pytest.raises(DataError, match="elsewhere: no dslabs Rdata.rdb"):  # an explicit path is never ignored
        find_dslabs(tmp_path / "elsewhere")


def test_unreadable_database_is_one_line(tmp_path: Path) -> None:
    folder = _fake_dir(tmp_path / "broken")
    with pytest.raises(DataError, match="cannot read 'movielens'.*install_movielens.sh"):
        load_movielens(folder)


def test_catalogue_from_frame() -> None:
    frame = pd.DataFrame({
        "movieId": pd.array([30, 10, 30, 20], dtype="Int32"),
        "title": pd.array(["C", "A", "C", pd.NA], dtype="string"),
        "year": pd.array([1999, pd.NA, 1999, pd.NA], dtype="Int32"),
        "genres": pd.Categorical(["Comedy|Romance", "(no genres listed)", "Comedy|Romance", "Drama"]),
    })
    cat = catalogue_from_frame(frame)
    assert cat.item_ids.tolist() == [10, 20, 30] and cat.item_ids.dtype == np.int64
    assert cat.titles == ["A", "movieId 20", "C"]
    assert cat.years == [None, None, 1999]
    assert cat.genres == [(), ("Drama",), ("Comedy", "Romance")]


def _require_real_data() -> None:
    try:
        find_dslabs()
    except DataError as err:
        message = f"MovieLens not installed ({err})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI installs it through scripts/test.sh")
        pytest.skip(message)


def test_real_movielens() -> None:
    _require_real_data()
    data = load_movielens()
    inter = data.interactions
    assert (len(inter), data.n_users, data.n_items) == (100_004, 671, 9_066)
    assert data.user_ids.tolist() == list(range(1, 672)) and data.rating_range == (0.5, 5.0)
    cat = data.catalogue
    assert (np.diff(cat.item_ids) > 0).all()
    assert (cat.titles[0], cat.years[0], cat.genres[0]) == (
        "Toy Story", 1995, ("Adventure", "Animation", "Children", "Comedy", "Fantasy"))
    assert sum(1 for g in cat.genres if not g) == 17  # "(no genres listed)"
    assert inter.rating.min() == 0.5 and inter.rating.max() == 5.0
    assert set((inter.rating * 2).tolist()) <= set(range(1, 11))  # half stars
    # every item is rated at least once in the full data (the catalogue is the movies of the ratings)
    assert len(np.unique(inter.item)) == 9_066
    assert len(np.unique(inter.user * data.n_items + inter.item)) == len(inter)
    rdb = find_dslabs() / "Rdata.rdb"
    assert len(load_movielens(rdb).interactions) == 100_004  # the file itself is accepted as the path
