"""Checking a ``POST /v1/recommendations`` body against the served run before anything is queued.

The same rules as ``fromzero recommend --ratings FILE`` (``data.interactions.read_ratings_csv``), each a 400
whose ``param`` names the field: ``k`` from 1 to the catalogue size, every ``ratings[i].movieId`` in the
run's catalogue and listed once, every ``ratings[i].rating`` inside the run's rating range.
"""

from __future__ import annotations

import numpy as np

from fromzero.data.interactions import Interactions
from fromzero.serve import schemas
from fromzero.serve.api_errors import APIError
from fromzero.serve.recommend_engine import RecommendEngine


def check_k(k: int, engine: RecommendEngine) -> int:
    """``k`` unless it is below 1 or above the catalogue (then a 400 naming ``k``)."""
    if not 1 <= k <= engine.n_items:
        raise APIError(400, f"k is {k}; give 1 to {engine.n_items} (the catalogue's size)", param="k")
    return k


def request_ratings(rows: list[schemas.RatingIn], engine: RecommendEngine) -> Interactions | None:
    """The request's ratings as :class:`Interactions` (dense items, request order), None for none; the first
    bad row is a 400 naming it (``ratings[i].movieId`` / ``ratings[i].rating``)."""
    if not rows:
        return None
    catalogue = engine.run.data.catalogue
    low, high = (float(v) for v in engine.run.info["rating_range"])
    items = catalogue.dense(np.asarray([r.movieId for r in rows], dtype=np.int64))  # (N,) -1 = not in it
    first: dict[int, int] = {}
    for i, row in enumerate(rows):
        if items[i] < 0:
            raise APIError(400, f"ratings[{i}].movieId: unknown item movieId {row.movieId}: not in the catalogue "
                           f"of {engine.model_id}", param=f"ratings[{i}].movieId")
        if row.movieId in first:
            raise APIError(400, f"ratings[{i}].movieId: movieId {row.movieId} is rated twice (first at "
                           f"ratings[{first[row.movieId]}]); keep one rating per item", param=f"ratings[{i}].movieId")
        first[row.movieId] = i
        if not low <= row.rating <= high:  # also refuses NaN, which Python's JSON reader accepts
            raise APIError(400, f"ratings[{i}].rating: {row.rating:g} is outside {low:g}..{high:g}",
                           param=f"ratings[{i}].rating")
    n = len(rows)
    return Interactions(np.zeros(n, dtype=np.int64), items.astype(np.int64),
                        np.asarray([r.rating for r in rows], dtype=np.float32),
                        np.asarray([r.timestamp for r in rows], dtype=np.int64))
