"""Where a recommender run's ratings come from: the recipe's ``data`` section.

    data: {source: movielens}                                      # MovieLens small, read from Debian's r-cran-dslabs
    data: {source: csv, ratings: my_ratings.csv, items: movies.csv}  # your own files

Both give one :class:`~fromzero.data.interactions.RatingData`: the whole catalogue (every item, rated in
training or not) and every rating event with its timestamp. The split is made by the run
(``data.interaction_split.leave_last_out``) and saved beside the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from fromzero.config import field, require
from fromzero.data.datasets.movielens import load_movielens
from fromzero.data.interactions import RatingData, rating_data_from_csv
from fromzero.errors import ConfigError

SOURCES = ("movielens", "csv")


@dataclass(frozen=True)
class RatingDataConfig:
    """The recipe's ``data`` section: which ratings, and how much history a user keeps."""

    source: str = field("movielens", help="movielens (Debian r-cran-dslabs; scripts/install_movielens.sh) | csv")
    path: str | None = field(None, help="movielens: the dslabs data folder or its Rdata.rdb (null: search the "
                                        "usual places)")
    ratings: str | None = field(None, help="csv: the ratings file (userId,movieId,rating,timestamp)")
    items: str | None = field(None, help="csv: the items file (movieId,title,genres[,year])")
    min_rating: float = field(0.5, help="csv: the smallest allowed rating")
    max_rating: float = field(5.0, help="csv: the largest allowed rating")
    max_len: int = field(50, help="most recent history items a model reads per user (sequence length)")

    def __post_init__(self) -> None:
        require(self.source in SOURCES, "source", f"{self.source!r} is not one of {', '.join(SOURCES)}")
        require(self.min_rating < self.max_rating, "max_rating", "must be larger than min_rating")
        require(self.max_len >= 2, "max_len", "must be at least 2")


def load_rating_data(cfg: RatingDataConfig, file: str) -> RatingData:
    """The ratings and catalogue the recipe names; a missing file or dataset is one line naming the fix."""
    if cfg.source == "movielens":
        return load_movielens(cfg.path)
    if not cfg.ratings or not cfg.items:
        raise ConfigError(f"{file}: data.source: csv needs data.ratings and data.items (CSV files)")
    return rating_data_from_csv(cfg.ratings, cfg.items, rating_range=(cfg.min_rating, cfg.max_rating))
