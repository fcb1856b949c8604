"""`fromzero train` on a recommender recipe over your own CSV files, then `fromzero recommend` on the run:
the printed list is the engine's top-k (titles, ids, scores), --explain prints history titles, --ratings
adds a new user's history, and a user with nothing to go on gets the labelled popularity fallback.
The failures (bad ratings files, wrong run folders) are rows of tests/cli/test_bad_inputs.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fromzero.cli import main
from fromzero.runs.recommender import load_recommender
from fromzero.serve.recommend_engine import RecommendEngine
from recommender_runs import NEW_USER, USERS, history, item_id, knn_score, popularity, title, write_csvs

LINE = re.compile(r"^\s*(\d+)\. (.+)  \[movieId (\d+)\]  score (-?\d+\.\d{4})$")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An item-kNN run trained by `fromzero train` from a recipe naming the CSV files."""
    folder = tmp_path_factory.mktemp("rec-cli")
    ratings, items = write_csvs(folder / "data")
    recipe = {"task": "recommendation", "seed": 0, "k": 5, "model": {"name": "item-knn"},
              "data": {"source": "csv", "ratings": str(ratings), "items": str(items)}}
    (folder / "knn.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert main(["train", str(folder / "knn.yaml"), "--out", str(folder / "knn"), "--no-progress"]) == 0
    return folder / "knn"


def _listed(out: str) -> list[tuple[int, str, int, float]]:
    return [(int(m[1]), m[2], int(m[3]), float(m[4])) for m in map(LINE.match, out.splitlines()) if m]


def test_recommend_prints_the_engines_top_k(run: Path, capsys: pytest.CaptureFixture) -> None:
    user = USERS[4]
    assert main(["recommend", str(run), "--user", str(user), "--k", "4"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"item-knn run {run}: top 4 for user {user} (from {len(history(user))} ratings)"
    expected = RecommendEngine(load_recommender(run)).recommend(user, k=4)
    assert _listed(out) == [(i, r.title, r.item_id, round(r.score, 4)) for i, r in enumerate(expected.items, 1)]
    for _, _, movie, score in _listed(out):
        assert movie not in history(user) and score == pytest.approx(knn_score(history(user), movie), abs=6e-5)
    assert "because" not in out and "cold start" not in out


def test_explain_names_history_titles(run: Path, capsys: pytest.CaptureFixture) -> None:
    user = USERS[0]
    assert main(["recommend", str(run), "--user", str(user), "--k", "3", "--explain"]) == 0
    reasons = re.findall(r"because: (.+) \([+-]\d+\.\d{3}\)$", capsys.readouterr().out, re.MULTILINE)
    assert reasons and set(reasons) <= {title(m) for m in history(user)}


def test_ratings_file_of_a_new_user(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    mine = [item_id(0), item_id(11), item_id(6)]
    file = tmp_path / "mine.csv"
    file.write_text("userId,movieId,rating,timestamp\n" + "".join(f"{NEW_USER},{m},4.5,{100 + i}\n"
                                                                   for i, m in enumerate(mine)), encoding="utf-8")
    assert main(["recommend", str(run), "--user", str(NEW_USER), "--k", "5", "--ratings", str(file)]) == 0
    out = capsys.readouterr().out
    assert f"top 5 for user {NEW_USER} (from 3 ratings)" in out and "cold start" not in out
    listed = _listed(out)
    assert len(listed) == 5 and not {m for _, _, m, _ in listed} & set(mine)
    for _, _, movie, score in listed:
        assert score == pytest.approx(knn_score(mine, movie), abs=6e-5)


def test_cold_start_is_labelled(run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["recommend", str(run), "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "top 3 for a new user (from 0 ratings)" in out and "cold start: no ratings" in out
    counts = popularity()
    assert [score for *_, score in _listed(out)] == [float(counts[m]) for _, _, m, _ in _listed(out)]
    assert min(score for *_, score in _listed(out)) >= sorted(counts.values(), reverse=True)[2]
