"""A tiny study end to end, in process: values, pruning, the best recipe, the summary and the plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fromzero.errors import ConfigError
from fromzero.pretrain.recipe import load_recipe
from fromzero.train.loggers import read_metrics
from fromzero.tune import TuneOptions, tune
from tune.tiny_study import finished_params, write_yaml

PNG = b"\x89PNG\r\n\x1a\n"


def _evals(run_dir: Path) -> dict[int, float]:
    """step -> val_loss, read straight from the run's metrics.jsonl (the reference for what Optuna got)."""
    return {r["step"]: r["val_loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "val_loss" in r}


def test_random_study_best_recipe_and_plots(tmp_path: Path, recipe: Path) -> None:
    space = write_yaml(tmp_path / "space.yaml", {
        "optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
        "optim.weight_decay": {"type": "float", "low": 0.0, "high": 0.2}})
    out, storage = tmp_path / "study", f"sqlite:///{tmp_path}/s.db"
    summary = tune(str(recipe), [], TuneOptions(space=str(space), sampler="random", trials=3, storage=storage,
                                                out=str(out), pruner="none", heartbeat_s=1), progress=False)
    params, counts = finished_params(storage, "tiny")
    assert counts["COMPLETE"] == 3 and len(params) == 3 and summary["ran"] == 3
    rows = summary["trials"]
    for row in rows:  # each value is the run's last evaluation (pretraining keeps the last weights)
        evals = _evals(Path(row["run_dir"]))
        assert Path(row["run_dir"]) == out / f"trial_{row['number']:04d}"
        assert row["value"] == pytest.approx(evals[max(evals)])
        assert {int(k): v for k, v in row["intermediate"].items()} == pytest.approx(evals)  # steps 2 and 4
        info = json.loads((Path(row["run_dir"]) / "trial.json").read_text())
        assert info["state"] == "complete" and info["params"] == row["params"]
    best = min(rows, key=lambda r: r["value"])
    assert summary["best"]["number"] == best["number"]
    loaded = load_recipe(out / "best_recipe.yaml")  # the same loader `fromzero pretrain` uses
    assert loaded.optim.lr == best["params"]["optim.lr"]
    assert loaded.optim.weight_decay == best["params"]["optim.weight_decay"]
    assert loaded.model["n_embd"] == 16 and loaded.out == str(out / "best_run")
    on_disk = json.loads((out / "study.json").read_text())
    assert on_disk["best"]["params"] == best["params"] and on_disk["counts"]["COMPLETE"] == 3
    for name in ("optimization_history", "parallel_coordinate", "param_importances"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == PNG


def test_median_pruner_stops_a_bad_trial(tmp_path: Path, small_corpus: Path) -> None:
    from tune.tiny_study import tiny_recipe

    recipe = write_yaml(tmp_path / "tiny.yaml", tiny_recipe(small_corpus, max_steps=6, eval_every=2))
    # grid order is file order: two good learning rates finish first, then a useless one (lr 1e-7 leaves the
    # loss at its initial value, above both others' at step 2), which the median pruner stops at step 2
    space = write_yaml(tmp_path / "space.yaml", {"optim.lr": {"type": "categorical",
                                                              "choices": [3e-3, 2e-3, 1e-7]}})
    out = tmp_path / "study"
    summary = tune(str(recipe), [], TuneOptions(space=str(space), sampler="grid", storage=f"sqlite:///{tmp_path}/s.db",
                                                out=str(out), pruner="median", heartbeat_s=1), progress=False)
    states = {r["params"]["optim.lr"]: r["state"] for r in summary["trials"]}
    assert states == {3e-3: "COMPLETE", 2e-3: "COMPLETE", 1e-7: "PRUNED"}
    pruned = next(r for r in summary["trials"] if r["state"] == "PRUNED")
    run_dir = Path(pruned["run_dir"])
    assert list(_evals(run_dir)) == [2]  # stopped after its first evaluation; its folder is kept
    info = json.loads((run_dir / "trial.json").read_text())
    assert info["state"] == "pruned" and "step 2" in info["reason"]
    medians = [_evals(Path(r["run_dir"]))[2] for r in summary["trials"] if r["state"] == "COMPLETE"]
    assert _evals(run_dir)[2] > max(medians)  # the pruner's reason, recomputed from the logs
    assert any("param_importances.png skipped" in s for s in summary["skipped"])  # one searched key


def test_unknown_metric_is_a_clear_error(tmp_path: Path, recipe: Path) -> None:
    space = write_yaml(tmp_path / "space.yaml", {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2}})
    expected = r"--metric val_f1: not a validation metric .*val_accuracy, val_loss, val_ppl"
    with pytest.raises(ConfigError, match=expected):
        tune(str(recipe), [], TuneOptions(space=str(space), sampler="random", trials=2, out=str(tmp_path / "s"),
                                          metric="f1", heartbeat_s=1), progress=False)


def test_an_image_recipe_is_tuned_like_a_text_one(tmp_path: Path) -> None:
    """`fromzero train` recipes run as trials too: the value is the best validation accuracy of each run."""
    from conftest import TINY_IMAGE_RECIPE
    from fromzero.vision.recipe import load_vision_recipe

    recipe = write_yaml(tmp_path / "digits.yaml", {**TINY_IMAGE_RECIPE, "select_metric": "accuracy"})
    space = write_yaml(tmp_path / "space.yaml", {"optim.lr": {"type": "categorical", "choices": [1e-3, 1e-2]}})
    out, storage = tmp_path / "study", f"sqlite:///{tmp_path}/s.db"
    summary = tune(str(recipe), [], TuneOptions(space=str(space), sampler="grid", storage=storage, out=str(out),
                                                pruner="none", metric="accuracy", heartbeat_s=1), progress=False)
    rows = summary["trials"]
    assert sorted(r["params"]["optim.lr"] for r in rows) == [1e-3, 1e-2]
    for row in rows:
        evals = [r["val_accuracy"] for r in read_metrics(Path(row["run_dir"]) / "metrics.jsonl")
                 if "val_accuracy" in r]
        assert row["value"] == pytest.approx(max(evals))  # the run keeps its best evaluation's weights
        assert (Path(row["run_dir"]) / "vision.json").is_file()
    best = max(rows, key=lambda r: r["value"])
    assert load_vision_recipe(out / "best_recipe.yaml").optim.lr == best["params"]["optim.lr"]
