"""A recommender run killed with SIGKILL mid-training and resumed ends bit-identical to an uninterrupted one:
weights and the loss trajectory, with BPR's negative samples, two-tower's id dropout and BERT4Rec's masks
all drawn again exactly as the uninterrupted run drew them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from fromzero.recommend.runner import train_recommender
from fromzero.train.loggers import read_metrics
from recommender_runs import write_csvs
from run_kill import kill_after_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src"
MODELS = {  # family -> what draws random numbers in its training steps
    "two-tower": ({"name": "two-tower", "dim": 8, "hidden": 16, "id_dropout": 0.3}, {"loss": "bpr", "negatives": 3}),
    "bert4rec": ({"name": "bert4rec-small", "dim": 8, "n_layer": 1, "max_len": 6}, {"loss": "masked_item"}),
}


def _recipe(tmp: Path, family: str) -> Path:
    ratings, items = write_csvs(tmp / "data")
    model, objective = MODELS[family]
    recipe = {"task": "recommendation", "seed": 5, "k": 5,
              "data": {"source": "csv", "ratings": str(ratings), "items": str(items)},
              "features": {"title": "tfidf", "max_features": 16}, "model": model, "objective": objective,
              "train": {"max_steps": 30, "batch_size": 4, "threads": 1, "precision": "fp32", "log_every": 1,
                        "eval_every": 10, "ckpt_every": 5, "keep_last": 0},
              "optim": {"lr": 1e-2, "warmup_steps": 3}}
    path = tmp / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _cmd(recipe: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fromzero", "train", str(recipe), "--out", str(out), "--no-progress", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r}


@pytest.mark.parametrize("family", sorted(MODELS))
def test_sigkill_then_resume_continues_the_exact_trajectory(tmp_path: Path, family: str) -> None:
    recipe = _recipe(tmp_path, family)
    subprocess.run(_cmd(recipe, tmp_path / "whole"), env=_env(), check=True, capture_output=True)
    proc = subprocess.Popen(_cmd(recipe, tmp_path / "killed"), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    kill_after_checkpoint(proc, tmp_path / "killed", 15, "recommender.json")
    done = subprocess.run(_cmd(recipe, tmp_path / "killed", "--resume"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    whole, resumed = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("whole", "killed"))
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert (whole[name] == resumed[name]).all(), name
    losses = _losses(tmp_path / "whole")
    assert losses == _losses(tmp_path / "killed") and len(losses) == 30
    # a different seed draws other negatives / masks: the trajectory is not fixed by the data alone
    train_recommender(recipe, ["--seed=6", "--train.max_steps=10"], out=tmp_path / "other", progress=False)
    assert _losses(tmp_path / "other") != {s: v for s, v in losses.items() if s <= 10}
