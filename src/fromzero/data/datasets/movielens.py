"""MovieLens small (100,004 ratings, 671 users, 9,066 movies), read at run time from Debian's r-cran-dslabs.

The GroupLens terms forbid redistributing the ratings, so fromzero never bundles them: ``bash
scripts/install_movielens.sh`` unpacks the Debian package (no R needed) and this module reads its R
lazy-load database with PyPI ``rdata``:

    Rdata.rdx   gzip-compressed R serialization: an index, variable name -> [offset, length] in Rdata.rdb
    Rdata.rdb   at that offset, ``length`` bytes = a 4-byte big-endian uncompressed length + a zlib stream
                of the R serialization of the variable (here a data frame)

The ``movielens`` data frame has one row per rating: movieId, title, year, genres ("Comedy|Romance"),
userId, rating (0.5..5 in half stars), timestamp (Unix seconds). The catalogue is every movie in it
(ascending movieId); a movie whose title is NA (7 of them) is called ``"movieId N"`` and its year is None;
"(no genres listed)" becomes no genres.

Where the data is looked for, first found wins: the ``path`` argument (the data folder or its Rdata.rdb),
env ``FROMZERO_DSLABS``, ``/usr/lib/R/site-library/dslabs/data`` (apt-get install r-cran-dslabs),
``~/.cache/fromzero/dslabs/usr/lib/R/site-library/dslabs/data`` (scripts/install_movielens.sh).
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from fromzero.data.interactions import Catalogue, RatingData, rating_data_from_arrays, split_genres
from fromzero.errors import DataError

ENV = "FROMZERO_DSLABS"
SYSTEM_DIR = Path("/usr/lib/R/site-library/dslabs/data")
CACHE_DIR = Path("~/.cache/fromzero/dslabs/usr/lib/R/site-library/dslabs/data")
INSTALL = "bash scripts/install_movielens.sh"
VARIABLE = "movielens"
RATING_RANGE = (0.5, 5.0)


def candidate_dirs(path: str | Path | None = None) -> list[Path]:
    """The folders searched for Rdata.rdb / Rdata.rdx, in order."""
    dirs = []
    if path is not None:
        path = Path(path).expanduser()
        dirs.append(path.parent if path.name == "Rdata.rdb" else path)
    if os.environ.get(ENV):
        dirs.append(Path(os.environ[ENV]).expanduser())
    return dirs + [SYSTEM_DIR, CACHE_DIR.expanduser()]


def _has_data(folder: Path) -> bool:
    return (folder / "Rdata.rdb").is_file() and (folder / "Rdata.rdx").is_file()


def find_dslabs(path: str | Path | None = None) -> Path:
    """The first data folder holding both Rdata.rdb and Rdata.rdx; a one-line DataError if none does.
    An explicit ``path`` that lacks them is an error even when another place has the data."""
    folders = candidate_dirs(path)
    if path is not None and not _has_data(folders[0]):
        raise DataError(f"{path}: no dslabs Rdata.rdb + Rdata.rdx there; give the dslabs data folder or run "
                        f"`{INSTALL}`")
    for folder in folders:
        if _has_data(folder):
            return folder
    searched = ", ".join(str(d) for d in folders)
    raise DataError(f"MovieLens (r-cran-dslabs) not found in {searched}; run `{INSTALL}` (or set {ENV})")


def _convert(raw: bytes):
    import rdata  # lazy: only MovieLens runs need it

    with warnings.catch_warnings():  # an unframed stream is "assumed RDS": that is what it is
        warnings.simplefilter("ignore", UserWarning)
        return rdata.conversion.convert(rdata.parser.parse_data(raw))


def read_dslabs_frame(folder: Path, variable: str = VARIABLE):
    """One variable of the dslabs lazy-load database (a pandas DataFrame for ``movielens``)."""
    try:
        index = _convert(gzip.decompress((folder / "Rdata.rdx").read_bytes()))
        offset, length = (int(v) for v in index["variables"][variable])
        with open(folder / "Rdata.rdb", "rb") as fh:
            fh.seek(offset)
            blob = fh.read(length)
        return _convert(zlib.decompress(blob[4:]))
    except ImportError:
        raise DataError("MovieLens needs the 'rdata' package: pip install 'rdata>=1.0'") from None
    except Exception as err:  # a damaged file fails anywhere inside rdata's parser, with any exception type
        raise DataError(f"{folder}: cannot read {variable!r} from the dslabs database ({type(err).__name__}: "
                        f"{err}); reinstall it with `{INSTALL}`") from None


def catalogue_from_frame(frame) -> Catalogue:
    """Every movie of the ratings frame, ascending movieId, with its title, year and genres."""
    movies = frame[["movieId", "title", "year", "genres"]].drop_duplicates("movieId").sort_values("movieId")
    ids = movies["movieId"].to_numpy(dtype=np.int64)
    titles = [f"movieId {i}" if _missing(t) else str(t) for i, t in zip(ids, movies["title"], strict=True)]
    years = [None if _missing(y) else int(y) for y in movies["year"]]
    genres = [split_genres("" if _missing(g) else str(g)) for g in movies["genres"]]
    return Catalogue(ids, titles, years, genres)


def _missing(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def load_movielens(path: str | Path | None = None) -> RatingData:
    """MovieLens small as :class:`RatingData` (see the module docstring for where it is looked for)."""
    folder = find_dslabs(path)
    frame = read_dslabs_frame(folder)
    columns = {"movieId", "title", "year", "genres", "userId", "rating", "timestamp"}
    if not columns <= set(frame.columns):
        raise DataError(f"{folder}: the movielens frame lacks {sorted(columns - set(frame.columns))}; reinstall "
                        f"it with `{INSTALL}`")
    catalogue = catalogue_from_frame(frame)
    return rating_data_from_arrays(
        catalogue, frame["userId"].to_numpy(dtype=np.int64), frame["movieId"].to_numpy(dtype=np.int64),
        frame["rating"].to_numpy(dtype=np.float32), frame["timestamp"].to_numpy(dtype=np.int64), RATING_RANGE,
        str(folder / "Rdata.rdb"))
