"""POST /v1/recommendations on a tiny item-kNN run trained from synthetic CSV files: the reply is what the
engine (and `fromzero recommend`) computes, a new user's own ratings count, cold start says so, every bad
field answers 400 naming it (422 for a wrong type), a recommender run answers only this route (and text
runs refuse it), the model card and /health say "recommendation", and `fromzero serve` starts on the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from fromzero.cli import main
from fromzero.data.interactions import Interactions
from fromzero.runs.recommender import load_recommender
from fromzero.serve import BackgroundServer, Engine, create_app
from fromzero.serve.recommend_engine import RecommendEngine
from recommender_runs import COLD_ITEM, NEW_USER, USERS, history, item_id, knn_score, popularity, write_csvs
from recommender_runs import train_tiny as train

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy_runs"
MODEL = "knn"  # the run folder's name is the model id


@pytest.fixture(scope="module")
def knn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rec-http")
    write_csvs(folder / "data")
    return train(folder / "data", folder / MODEL, "item-knn")


@pytest.fixture(scope="module")
def server(knn_run: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(Engine.from_run_dir(knn_run))) as srv:
        yield srv


def _post(server: BackgroundServer, body: dict, path: str = "/v1/recommendations") -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=60)


def _error(reply: httpx.Response, status: int) -> dict:
    assert reply.status_code == status, reply.text
    return reply.json()["error"]


def test_reply_is_the_engines_top_k(server: BackgroundServer, knn_run: Path) -> None:
    user = USERS[3]
    reply = _post(server, {"model": MODEL, "user": user, "k": 4, "explain": True})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = RecommendEngine(load_recommender(knn_run)).recommend(user, k=4, explain=True)
    assert {k: body[k] for k in ("object", "model", "user", "fallback", "history")} == {
        "object": "list", "model": MODEL, "user": user, "fallback": None, "history": len(history(user))}
    assert [(d["object"], d["rank"], d["movieId"], d["title"]) for d in body["data"]] == [
        ("recommendation", i, r.item_id, r.title) for i, r in enumerate(expected.items, 1)]
    for d, r in zip(body["data"], expected.items, strict=True):
        assert d["score"] == pytest.approx(r.score, abs=1e-6)
        assert d["score"] == pytest.approx(knn_score(history(user), d["movieId"]), abs=1e-6)  # naive cosine sums
        assert [(b["reason"], b["contribution"]) for b in d["because"]] == r.because  # JSON floats round-trip
    assert not {d["movieId"] for d in body["data"]} & set(history(user))


def test_new_user_with_ratings_and_cold_start(server: BackgroundServer) -> None:
    mine = [item_id(2), item_id(9)]
    ratings = [{"movieId": m, "rating": 4.5, "timestamp": 1_700_000_000 + i} for i, m in enumerate(mine)]
    body = _post(server, {"model": MODEL, "user": NEW_USER, "k": 5, "ratings": ratings}).json()
    assert body["fallback"] is None and body["history"] == 2 and body["user"] == NEW_USER
    assert all(d["because"] == [] for d in body["data"])  # explain is off by default
    assert [d["score"] for d in body["data"]] == pytest.approx([knn_score(mine, d["movieId"]) for d in body["data"]])
    assert not {d["movieId"] for d in body["data"]} & set(mine)
    cold = _post(server, {"model": MODEL, "user": None, "k": 3}).json()
    assert cold["fallback"] and "popular" in cold["fallback"] and cold["history"] == 0 and cold["user"] is None
    counts = popularity()
    assert [d["score"] for d in cold["data"]] == [float(counts[d["movieId"]]) for d in cold["data"]]
    assert min(d["score"] for d in cold["data"]) >= sorted(counts.values(), reverse=True)[3]
    assert len(_post(server, {"model": MODEL, "user": USERS[0], "k": 21}).json()["data"]) == 21 - 6  # all unseen


GOOD = {"movieId": item_id(0), "rating": 4.0, "timestamp": 5}


@pytest.mark.parametrize(("fields", "status", "param", "words"), [
    ({"k": 0}, 400, "k", "give 1 to 21"),
    ({"k": 22}, 400, "k", "give 1 to 21"),
    ({"ratings": [GOOD, {**GOOD, "movieId": 12}]}, 400, "ratings[1].movieId", "unknown item movieId 12"),
    ({"ratings": [GOOD, {**GOOD, "timestamp": 6}]}, 400, "ratings[1].movieId", "rated twice"),
    ({"ratings": [{**GOOD, "rating": 5.5}]}, 400, "ratings[0].rating", "outside 0.5..5"),
    ({"ratings": [{**GOOD, "rating": 0.0}]}, 400, "ratings[0].rating", "outside 0.5..5"),
    ({"ratings": [{"movieId": item_id(0), "rating": 4.0}]}, 422, "ratings.0.timestamp", "required"),
    ({"user": "3"}, 422, "user", "integer"),
    ({"k": 2.5}, 422, "k", "integer"),
])
def test_bad_requests(server: BackgroundServer, fields: dict, status: int, param: str, words: str) -> None:
    error = _error(_post(server, {"model": MODEL, "user": USERS[0], **fields}), status)
    assert error["param"] == param and words in error["message"], error
    assert error["type"] == "invalid_request_error"
    assert httpx.get(server.url + "/health", timeout=30).json()["status"] == "ok"


def test_unknown_model_is_404(server: BackgroundServer) -> None:
    assert _error(_post(server, {"model": "other", "user": 1}), 404)["code"] == "model_not_found"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/completions", {"prompt": "hello", "max_tokens": 2}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/embeddings", {"input": "hello"}),
    ("/v1/classifications", {"input": "hello"}),
    ("/v1/images/classifications", {"images": ["aGVsbG8="]}),
])
def test_other_routes_refuse_a_recommender_run(server: BackgroundServer, path: str, body: dict) -> None:
    error = _error(_post(server, {"model": MODEL, **body}, path), 400)
    assert error["code"] == "unsupported_endpoint" and "/v1/recommendations" in error["message"]


def test_text_run_refuses_recommendations() -> None:
    engine = Engine.from_run_dir(LEGACY / "gpt_run")
    with BackgroundServer(create_app(engine)) as srv:
        error = _error(_post(srv, {"model": engine.model_id, "user": 1}), 400)
    assert error["code"] == "unsupported_endpoint" and "/v1/completions" in error["message"]


def test_model_card_health_and_the_worker(server: BackgroundServer) -> None:
    card = httpx.get(f"{server.url}/v1/models/{MODEL}", timeout=30).json()
    assert card["id"] == MODEL and card["kind"] == "recommendation" and card["endpoints"] == ["/v1/recommendations"]
    assert httpx.get(server.url + "/v1/models", timeout=30).json()["data"] == [card]
    before = server.app.state.scheduler.stats.completed
    assert _post(server, {"model": MODEL, "user": USERS[1], "k": 2}).status_code == 200
    health = httpx.get(server.url + "/health", timeout=30).json()
    assert health["status"] == "ok" and health["kind"] == "recommendation"
    assert health["jobs"]["completed"] == before + 1 and health["engine"]["recommendations"] >= 1


def test_ratings_reach_the_engine_as_dense_items(knn_run: Path) -> None:
    """The server's ratings and the CLI's (an Interactions of dense items) give the same reply."""
    engine = Engine.from_run_dir(knn_run)
    mine = [item_id(4), COLD_ITEM]
    dense = engine.recommender.run.data.catalogue.dense(np.asarray(mine))
    direct = engine.recommend(NEW_USER, 5, True, Interactions(np.zeros(2, np.int64), dense,
                                                               np.asarray([3.0, 5.0], np.float32),
                                                               np.asarray([1, 2], np.int64)))
    with BackgroundServer(create_app(engine)) as srv:
        body = _post(srv, {"model": MODEL, "user": NEW_USER, "k": 5, "explain": True,
                           "ratings": [{"movieId": mine[0], "rating": 3.0, "timestamp": 1},
                                       {"movieId": mine[1], "rating": 5, "timestamp": 2}]}).json()
    assert [(d["movieId"], d["score"]) for d in body["data"]] == [(r.item_id, r.score) for r in direct.items]


def test_cli_serve_starts_on_a_recommender_run(knn_run: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    started = {}
    monkeypatch.setattr("fromzero.serve.server.uvicorn.run", lambda app, **kw: started.update(app=app, **kw))
    assert main(["serve", str(knn_run), "--port", "0"]) == 0
    assert f"serving {MODEL} (item-knn run, recommendations)" in capsys.readouterr().out
    with BackgroundServer(started["app"]) as srv:
        reply = _post(srv, {"model": MODEL, "user": USERS[0], "k": 1})
    assert reply.status_code == 200 and reply.json()["data"][0]["rank"] == 1
