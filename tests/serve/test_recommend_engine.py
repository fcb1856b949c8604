"""RecommendEngine (what `fromzero recommend` and POST /v1/recommendations answer from) on tiny runs trained
from synthetic CSV files: seen items are never recommended, the same seed gives the same list, cold start
falls back to popularity only where the model cannot place the user, and explanations name history titles.
References come from the CSV rows alone (recommender_runs.py), not from the run's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fromzero.data.interactions import Interactions
from fromzero.runs.recommender import load_recommender
from fromzero.serve import Engine
from fromzero.serve.recommend_engine import RecommendEngine, RecommendReply
from recommender_runs import (
    COLD_ITEM,
    FAMILIES,
    NEW_USER,
    USERS,
    history,
    item_id,
    knn_score,
    popularity,
    title,
    write_csvs,
)
from recommender_runs import train_tiny as train

CATALOGUE = 21  # 20 films and the cold item


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rec-data")
    write_csvs(folder)
    return folder


@pytest.fixture(scope="module")
def runs(data: Path) -> dict[str, Path]:
    return {family: train(data, data.parent / f"run-{family}", family) for family in FAMILIES}


def engine(run: Path) -> RecommendEngine:
    return RecommendEngine(load_recommender(run))


def own_ratings(engine: RecommendEngine, movies: list[int], start: int = 50_000) -> Interactions:
    """A new user's ratings of ``movies`` (4.0 each, in this order), as the CLI and the server pass them."""
    dense = engine.run.data.catalogue.dense(np.asarray(movies))
    assert (dense >= 0).all()
    n = len(movies)
    return Interactions(np.zeros(n, np.int64), dense, np.full(n, 4.0, np.float32),
                        np.arange(start, start + n, dtype=np.int64))


def movie_ids(reply: RecommendReply) -> list[int]:
    return [r.item_id for r in reply.items]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_seen_items_are_never_recommended(runs: dict[str, Path], family: str) -> None:
    """k = every unseen item: the list is exactly the catalogue minus the user's history (the CSV's rows)."""
    eng = engine(runs[family])
    catalogue = {item_id(i) for i in range(20)} | {COLD_ITEM}
    for user in USERS:
        seen = history(user)
        reply = eng.recommend(user, k=CATALOGUE, ratings=None)
        assert reply.history == len(seen) and reply.fallback is None
        assert sorted(movie_ids(reply)) == sorted(catalogue - set(seen))
        scores = [r.score for r in reply.items]
        assert scores == sorted(scores, reverse=True)
    extra = [item_id(i) for i in range(20) if item_id(i) not in history(1)][:3]
    reply = eng.recommend(1, k=5, ratings=own_ratings(eng, extra))
    assert reply.history == len(history(1)) + 3
    assert not set(movie_ids(reply)) & (set(history(1)) | set(extra))


@pytest.mark.parametrize("family", ["item-knn", "sasrec"])
def test_same_recipe_and_seed_give_the_same_recommendations(data: Path, tmp_path: Path, family: str) -> None:
    first, second = (engine(train(data, tmp_path / f"run{i}", family, seed=3)) for i in (1, 2))
    for user in (USERS[0], USERS[-1], NEW_USER):
        ratings = own_ratings(first, [item_id(0), item_id(7)]) if user == NEW_USER else None
        a = first.recommend(user, k=8, explain=True, ratings=ratings)
        b = second.recommend(user, k=8, explain=True, ratings=ratings)
        assert [(r.item_id, r.score, r.because) for r in a.items] == [(r.item_id, r.score, r.because) for r in b.items]


def _popular_first(reply: RecommendReply, exclude: set[int]) -> None:
    """The reply is a top-k of the training counts (recomputed from the CSV) among items not in ``exclude``."""
    counts = popularity()
    listed = movie_ids(reply)
    assert [r.score for r in reply.items] == [float(counts[m]) for m in listed]
    rest = [counts[m] for m in counts if m not in exclude and m not in listed]
    assert min(counts[m] for m in listed) >= max(rest)
    assert not set(listed) & exclude


@pytest.mark.parametrize("family", list(FAMILIES))
def test_unknown_user_without_ratings_gets_the_popularity_fallback(runs: dict[str, Path], family: str) -> None:
    for user in (NEW_USER, None):
        reply = engine(runs[family]).recommend(user, k=5, explain=True)
        assert reply.fallback is not None and "popular" in reply.fallback and reply.history == 0
        _popular_first(reply, set())
        assert all(r.because == [(f"{popularity()[r.item_id]} ratings in training", r.score)] for r in reply.items)


def test_unknown_user_with_ratings_item_knn_scores_their_history(runs: dict[str, Path]) -> None:
    eng = engine(runs["item-knn"])
    mine = [item_id(1), item_id(12), item_id(3)]
    reply = eng.recommend(NEW_USER, k=6, explain=True, ratings=own_ratings(eng, mine))
    assert reply.fallback is None and reply.history == 3
    expected = {m: knn_score(mine, m) for m in popularity() if m not in mine}  # naive cosine sums
    assert [r.score for r in reply.items] == pytest.approx([expected[r.item_id] for r in reply.items], abs=1e-6)
    assert min(r.score for r in reply.items) >= max(v for m, v in expected.items() if m not in movie_ids(reply)) - 1e-6
    titles = {title(m): m for m in mine}
    for rec in reply.items:  # --explain: each reason is a history film and its similarity to the item
        assert rec.because and all(reason in titles for reason, _ in rec.because)
        for reason, value in rec.because:
            assert value == pytest.approx(knn_score([titles[reason]], rec.item_id), abs=1e-6)


def test_unknown_user_with_ratings_mf_falls_back(runs: dict[str, Path]) -> None:
    eng = engine(runs["mf"])
    mine = [item_id(0), item_id(1)]
    reply = eng.recommend(NEW_USER, k=5, ratings=own_ratings(eng, mine))
    assert reply.fallback is not None and "mf" in reply.fallback and reply.history == 2
    _popular_first(reply, set(mine))
    known = eng.recommend(USERS[0], k=5)  # a user it trained on: the model answers
    assert known.fallback is None and not set(movie_ids(known)) & set(history(USERS[0]))


@pytest.mark.parametrize("family", ["item-knn", "sasrec"])
def test_explanations_name_history_titles(runs: dict[str, Path], family: str) -> None:
    user = USERS[2]
    reply = engine(runs[family]).recommend(user, k=4, explain=True)
    titles = {title(m) for m in history(user)}
    assert any(rec.because for rec in reply.items)
    for rec in reply.items:
        assert len(rec.because) <= 3 and all(reason in titles and value > 0 for reason, value in rec.because)
    assert all(rec.because == [] for rec in engine(runs[family]).recommend(user, k=4).items)


def test_serve_engine_wraps_a_recommender_run(runs: dict[str, Path]) -> None:
    eng = Engine.from_run_dir(runs["item-knn"])
    assert eng.kind == "recommendation" and eng.endpoints == ("recommendations",) and eng.tokenizer is None
    assert eng.family == "item-knn"
    reply = eng.recommend(USERS[0], 3, False, None)
    assert movie_ids(reply) == movie_ids(engine(runs["item-knn"]).recommend(USERS[0], k=3))
    assert eng.stats.recommendations == 1
    with pytest.raises(ValueError, match="does not generate"):
        eng.stream([1], None)  # type: ignore[arg-type]
