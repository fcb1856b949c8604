"""An image run killed with SIGKILL mid-training and resumed ends bit-identical to an uninterrupted one:
weights, BatchNorm running statistics and the loss trajectory, with augmentation (flip, crop, jitter, mixup)
drawn from the batch's seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file

from fromzero.train.loggers import read_metrics
from run_kill import kill_after_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src"
RECIPE = {"seed": 3, "task": "image_classification", "data": {"source": "digits"},
          "augment": {"hflip": 0.5, "crop_padding": 1, "jitter": 0.2, "mixup_alpha": 0.4},
          "model": {"name": "cnn", "channels": [8, 16], "hidden": 32},
          "train": {"max_steps": 30, "batch_size": 16, "threads": 1, "precision": "fp32",
                    "log_every": 1, "eval_every": 10,
                    "eval_batches": 2, "ckpt_every": 5, "keep_last": 0},
          "optim": {"lr": 5e-3, "warmup_steps": 5}}


def _cmd(recipe: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fromzero", "train", str(recipe), "--out", str(out), "--no-progress", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def _kill_after_checkpoint(recipe: Path, out: Path, step: int) -> None:
    """Start a run, SIGKILL it once checkpoint ``step`` exists."""
    proc = subprocess.Popen(_cmd(recipe, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_after_checkpoint(proc, out, step, "vision.json")


def _train_losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r}


def test_sigkill_then_resume_continues_the_exact_trajectory(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    subprocess.run(_cmd(recipe, tmp_path / "whole"), env=_env(), check=True, capture_output=True)
    _kill_after_checkpoint(recipe, tmp_path / "killed", 10)
    done = subprocess.run(_cmd(recipe, tmp_path / "killed", "--resume"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    whole, resumed = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("whole", "killed"))
    assert whole.keys() == resumed.keys() and any("running_mean" in k for k in whole)
    for name in whole:
        assert (whole[name] == resumed[name]).all(), name  # BatchNorm statistics included
    losses_whole, losses_resumed = _train_losses(tmp_path / "whole"), _train_losses(tmp_path / "killed")
    assert losses_whole == losses_resumed and len(losses_whole) == 30
