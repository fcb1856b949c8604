"""Content features of catalogue items: genre multi-hot, a scaled release year, TF-IDF of titles.

    genres   one column per genre seen in the catalogue (sorted), 1 where the item has it      "genre:Comedy"
    year     min-max scaled to [0, 1] over the catalogue's known years, 0.5 where unknown       "year"
    title    TF-IDF of the titles (scikit-learn, fitted on the catalogue itself, L2-normalised
             rows, English stop words removed, at most ``max_features`` terms)                "title:star"

Blocks come in that order. Titles lose a trailing "(1995)": the year is its own feature, and a year
token would make every 1995 film look alike. Text-embedding features (MiniLM) are computed by the
runner that owns the encoder and joined with :func:`concat_features`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

from fromzero.errors import ConfigError, DataError

NO_GENRE = "(no genres listed)"  # MovieLens's placeholder is the absence of a genre, not a genre
_TRAILING_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")


class CatalogueLike(Protocol):
    """What is read from a catalogue (``fromzero.data.interactions.Catalogue``): index i = dense item i."""

    titles: list[str]
    years: list[int | None]
    genres: list[tuple[str, ...]]


def genre_block(genres: Sequence[tuple[str, ...]]) -> tuple[np.ndarray, list[str]]:
    """(I, G) multi-hot over the sorted genres present, and their names "genre:X"."""
    vocab = sorted({g for gs in genres for g in gs if g != NO_GENRE})
    column = {g: j for j, g in enumerate(vocab)}
    block = np.zeros((len(genres), len(vocab)), dtype=np.float32)
    for i, gs in enumerate(genres):
        for g in gs:
            if g in column:
                block[i, column[g]] = 1.0
    return block, [f"genre:{g}" for g in vocab]


def year_block(years: Sequence[int | None]) -> tuple[np.ndarray, list[str]]:
    """(I, 1) year min-max scaled to [0, 1]; unknown years (and a catalogue of one year) get 0.5."""
    known = [y for y in years if y is not None]
    low, high = (min(known), max(known)) if known else (0, 0)
    span = high - low
    col = [0.5 if y is None or span == 0 else (y - low) / span for y in years]
    return np.asarray(col, dtype=np.float32).reshape(-1, 1), ["year"]


def title_block(titles: Sequence[str], max_features: int) -> tuple[np.ndarray, list[str]]:
    """(I, T) TF-IDF of the titles (T <= max_features), rows L2-normalised, names "title:term"."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    cleaned = [_TRAILING_YEAR.sub("", t) for t in titles]
    vectorizer = TfidfVectorizer(max_features=max_features, stop_words="english", norm="l2", dtype=np.float32)
    try:
        matrix = vectorizer.fit_transform(cleaned)
    except ValueError as err:  # only stop words / no words in any title
        raise DataError(f"item features: the titles have no usable words for TF-IDF ({err}); use title: none") \
            from None
    return matrix.toarray().astype(np.float32), [f"title:{w}" for w in vectorizer.get_feature_names_out()]


def concat_features(blocks: Sequence[tuple[np.ndarray, list[str]]]) -> tuple[np.ndarray, list[str]]:
    """Join feature blocks side by side: [(features (I, F_b), names)] -> ((I, sum F_b) float32, names)."""
    if not blocks:
        raise ConfigError("item features: no feature block is selected; turn on genres, year or title")
    rows = {b.shape[0] for b, _ in blocks}
    if len(rows) != 1:
        raise ValueError(f"concat_features: blocks have different item counts {sorted(rows)}")
    for block, names in blocks:
        if block.ndim != 2 or block.shape[1] != len(names):
            raise ValueError(f"concat_features: a block of shape {block.shape} has {len(names)} names")
    names = [n for _, block_names in blocks for n in block_names]
    return np.concatenate([b for b, _ in blocks], axis=1).astype(np.float32), names


def item_features(catalogue: CatalogueLike, *, title: Literal["tfidf", "none"] = "tfidf", max_features: int = 256,
                  genres: bool = True, year: bool = True) -> tuple[np.ndarray, list[str]]:
    """features (I, F) float32 and their F names, for every catalogue item (rated or not)."""
    if title not in ("tfidf", "none"):
        raise ConfigError(f"item features: title must be tfidf or none, got {title!r}")
    if max_features < 1:
        raise ConfigError(f"item features: max_features must be positive, got {max_features}")
    n = len(catalogue.titles)
    if n == 0 or len(catalogue.years) != n or len(catalogue.genres) != n:
        raise DataError(f"item features: the catalogue has {n} titles, {len(catalogue.years)} years and "
                        f"{len(catalogue.genres)} genre lists; they must be equal and non-zero")
    blocks = []
    if genres:
        blocks.append(genre_block(catalogue.genres))
    if year:
        blocks.append(year_block(catalogue.years))
    if title == "tfidf":
        blocks.append(title_block(catalogue.titles, max_features))
    return concat_features(blocks)
