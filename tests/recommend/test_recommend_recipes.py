"""Every recommender recipe validates and trains end to end on a tiny CSV rating set in seconds; the run's
split file has no leakage, and a popularity run's test metrics equal a hand-rolled full ranking."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from fromzero.recommend.recipe import load_recommend_recipe
from fromzero.recommend.runner import train_recommender
from fromzero.runs import load_run
from fromzero.runs.recommender import load_recommender
from recommender_runs import COLD_ITEM, N_FILMS, history, item_id, popularity, write_csvs

RECIPES = sorted((Path(__file__).parents[2] / "recipes" / "recommend").glob("*.yaml"))
SMALL = {"sasrec": ["--model.dim=8", "--model.n_layer=1"], "bert4rec": ["--model.dim=8", "--model.n_layer=1"],
         "two-tower": ["--model.dim=8", "--model.hidden=8", "--features.max_features=8"]}


def test_there_is_a_recipe_per_family() -> None:
    families = {load_recommend_recipe(p).family(str(p)) for p in RECIPES}
    assert families == {"popularity", "item-knn", "content", "mf", "two-tower", "sasrec", "bert4rec"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_trains_on_a_tiny_csv(path: Path, tmp_path: Path) -> None:
    ratings, items = write_csvs(tmp_path / "data")
    recipe = load_recommend_recipe(path)
    family = recipe.family(str(path))
    overrides = ["--data.source=csv", f"--data.ratings={ratings}", f"--data.items={items}", "--k=5",
                 "--train.max_steps=6", "--train.eval_every=3", "--train.ckpt_every=3", "--train.batch_size=4",
                 "--train.threads=1", "--train.precision=fp32", *SMALL.get(family, [])]
    if recipe.features.title == "embedding":  # its encoder run is the user's import (test_title_embeddings.py)
        overrides.append("--features.title=tfidf")
    result = train_recommender(path, overrides, out=tmp_path / "run", progress=False)
    test = json.loads((result.run_dir / "eval.json").read_text())["test"]
    assert {"hr_5", "ndcg_5", "mrr", "coverage_5"} <= set(test) and test["users"] == 8
    assert 0 <= test["ndcg_5"] <= test["hr_5"] <= 1
    assert ("rmse" in test) == (recipe.loss(str(path)) == "mse")
    assert not (result.run_dir / "checkpoints").exists()  # a finished run keeps its final state only
    assert load_run(result.run_dir).kind == "recommendation"
    assert load_recommender(result.run_dir).info["family"] == family


def test_split_file_has_no_future_in_training(tmp_path: Path) -> None:
    ratings, items = write_csvs(tmp_path / "data")
    run = train_recommender(None, ["--model.name=popularity", "--data.source=csv", f"--data.ratings={ratings}",
                                   f"--data.items={items}", "--k=5"], out=tmp_path / "run", progress=False).run_dir
    rows = list(csv.DictReader((run / "split.csv").read_text(encoding="utf-8").splitlines()))
    by_user: dict[str, dict[str, list[int]]] = {}
    for r in rows:
        by_user.setdefault(r["userId"], {}).setdefault(r["split"], []).append(int(r["timestamp"]))
    for parts in by_user.values():
        assert len(parts["validation"]) == len(parts["test"]) == 1
        assert max(parts["train"]) < parts["validation"][0] < parts["test"][0]
    assert len(rows) == sum(len(history(u)) for u in range(1, 9))


def test_popularity_metrics_equal_a_hand_rolled_full_ranking(tmp_path: Path) -> None:
    ratings, items = write_csvs(tmp_path / "data")
    run = train_recommender(None, ["--model.name=popularity", "--data.source=csv", f"--data.ratings={ratings}",
                                   f"--data.items={items}", "--k=5"], out=tmp_path / "run", progress=False)
    counts = popularity()
    catalogue = sorted([item_id(i) for i in range(N_FILMS)] + [COLD_ITEM])
    hits = ndcg = rr = 0.0
    for u in range(1, 9):
        seen, target = history(u)[:-1], history(u)[-1]  # test: ranked after train + validation
        unseen = [m for m in catalogue if m not in seen]
        # rank: items with more training ratings first, ties to the smaller movieId (the lower dense index)
        rank = sorted(unseen, key=lambda m: (-counts[m], m)).index(target)
        hits += rank < 5
        ndcg += 1 / math.log2(rank + 2) if rank < 5 else 0.0
        rr += 1 / (rank + 1)
    test = run.test_metrics
    assert test["hr_5"] == pytest.approx(hits / 8) and test["ndcg_5"] == pytest.approx(ndcg / 8)
    assert test["mrr"] == pytest.approx(rr / 8)


def test_eval_and_info_read_the_run_directory_alone(tmp_path: Path) -> None:
    """`fromzero eval` recomputes eval.json from the saved split and weights; `info` describes the run."""
    from fromzero.recommend.evaluate import describe_recommender_run, evaluate_recommender_run

    ratings, items = write_csvs(tmp_path / "data")
    run = train_recommender(None, ["--model.name=item-knn", "--data.source=csv", f"--data.ratings={ratings}",
                                   f"--data.items={items}", "--k=5"], out=tmp_path / "run", progress=False)
    (tmp_path / "data" / "ratings.csv").unlink()  # the run directory must be enough
    assert evaluate_recommender_run(run.run_dir, progress=False) == pytest.approx(run.test_metrics)
    lines = describe_recommender_run(run.run_dir)
    assert lines[0].startswith("recommender run: item-knn trained with fit") and lines[-1].startswith("test: hr_5")
