"""A tiny synthetic rating set as CSV files, recommender runs trained on it, and naive references.

8 users rate 6 of 20 films each at distinct timestamps; one more film (movieId 999) nobody rated. The
references below recompute what a run should hold from these rows alone, never from the run's files.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from fromzero.recommend.runner import train_recommender

N_FILMS = 20
COLD_ITEM = 999  # in the catalogue, never rated
USERS = list(range(1, 9))
NEW_USER = 500  # not in the data
#: Per family: the recipe's model name and overrides that keep a gradient family to a fraction of a second.
FAMILIES = {
    "popularity": ["--model.name=popularity"],
    "item-knn": ["--model.name=item-knn"],
    "mf": ["--model.name=mf-explicit", "--model.dim=8", "--train.max_steps=5", "--train.eval_every=5"],
    "sasrec": ["--model.name=sasrec-small", "--model.dim=8", "--model.n_layer=1", "--model.dropout=0.0",
               "--train.max_steps=5", "--train.eval_every=5"],
}


def item_id(i: int) -> int:
    return 10 * (i + 1)


def title(movie: int) -> str:
    return "Never Rated (2020)" if movie == COLD_ITEM else f"Film {movie // 10} ({1980 + movie // 10})"


def rating_rows(seed: int = 0) -> list[tuple[int, int, float, int]]:
    """(userId, movieId, rating, timestamp): films 0..4 are rated by more users than the rest."""
    rng = random.Random(seed)
    rows = []
    for u in USERS:
        liked = rng.sample(range(5), 3) + rng.sample(range(5, N_FILMS), 3)
        rng.shuffle(liked)
        rows += [(u, item_id(i), float(rng.choice([1, 2, 3, 4, 5])), 1_000 * u + j) for j, i in enumerate(liked)]
    return rows


def write_csvs(folder: Path) -> tuple[Path, Path]:
    """ratings.csv and items.csv in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    films = [item_id(i) for i in range(N_FILMS)] + [COLD_ITEM]
    items = ["movieId,title,genres"] + [f"{m},{title(m)},{'Comedy' if m % 20 else 'Drama'}" for m in films]
    ratings = ["userId,movieId,rating,timestamp"] + [f"{u},{m},{r},{t}" for u, m, r, t in rating_rows()]
    (folder / "items.csv").write_text("\n".join(items) + "\n", encoding="utf-8")
    (folder / "ratings.csv").write_text("\n".join(ratings) + "\n", encoding="utf-8")
    return folder / "ratings.csv", folder / "items.csv"


def train_tiny(data: Path, out: Path, family: str, seed: int = 0) -> Path:
    """A recommender run of ``family`` (FAMILIES) on the CSV files in ``data``; returns its folder."""
    ratings, items = data / "ratings.csv", data / "items.csv"
    overrides = ["--data.source=csv", f"--data.ratings={ratings}", f"--data.items={items}", "--k=5",
                 f"--seed={seed}", "--train.batch_size=4", "--train.threads=1", "--train.log_every=5",
                 *FAMILIES[family]]
    return train_recommender(None, overrides, out=out, progress=False).run_dir


def history(user: int) -> list[int]:
    """The movieIds ``user`` rated, oldest first."""
    return [m for u, m, _, _ in sorted(rating_rows(), key=lambda r: r[3]) if u == user]


def train_rows() -> list[tuple[int, int]]:
    """(userId, movieId) of the training split: each user's ratings but their last two (leave-last-out)."""
    out = []
    for u in USERS:
        seen = history(u)
        out += [(u, m) for m in (seen[:-2] if len(seen) >= 3 else seen)]
    return out


def popularity() -> dict[int, int]:
    """Training ratings per movieId (every film and the cold item; 0 for the unrated)."""
    counts = {item_id(i): 0 for i in range(N_FILMS)} | {COLD_ITEM: 0}
    for _, m in train_rows():
        counts[m] += 1
    return counts


def cosine(a: int, b: int) -> float:
    """Binary cosine of two films' rater sets in the training split (item-kNN's similarity)."""
    raters = {}
    for u, m in train_rows():
        raters.setdefault(m, set()).add(u)
    ra, rb = raters.get(a, set()), raters.get(b, set())
    return len(ra & rb) / math.sqrt(len(ra) * len(rb)) if ra and rb else 0.0


def knn_score(seen: list[int], movie: int) -> float:
    """Item-kNN's score of ``movie`` for a history (every other item is a neighbour at this size)."""
    return sum(cosine(h, movie) for h in seen if h != movie)
