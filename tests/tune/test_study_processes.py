"""Through the real command: a study killed with SIGKILL mid-trial resumes to exactly N finished trials, and two
workers sharing one SQLite storage never run the same grid point."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tune.tiny_study import PYTHON, cli_env, finished_params, tiny_recipe, write_yaml


def _tune(recipe: Path, space: Path, out: Path, storage: str, *extra: str) -> list[str]:
    return [PYTHON, "-m", "fromzero", "tune", str(recipe), "--space", str(space), "--storage", storage,
            "--out", str(out), "--heartbeat", "1", "--no-progress", *extra]


def test_sigkill_mid_trial_then_resume_ends_with_exactly_n(tmp_path: Path, small_corpus: Path) -> None:
    recipe = write_yaml(tmp_path / "tiny.yaml", tiny_recipe(small_corpus, max_steps=60, eval_every=20))
    space = write_yaml(tmp_path / "space.yaml", {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2,
                                                              "log": True}})
    out, storage = tmp_path / "study", f"sqlite:///{tmp_path}/study.db"
    argv = _tune(recipe, space, out, storage, "--sampler", "random", "--trials", "3", "--pruner", "none")
    proc = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    second = out / "trial_0001"
    deadline = time.time() + 120
    while not second.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, f"the study ended before its second trial: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (second / "trial.json").exists(), "the kill must land mid-trial"
    _, counts = finished_params(storage, "tiny")
    assert counts["RUNNING"] == 1 and counts["COMPLETE"] == 1  # what the killed process left behind

    done = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    params, counts = finished_params(storage, "tiny")
    assert counts["COMPLETE"] + counts["PRUNED"] == 3 and counts["RUNNING"] == 0 and counts["WAITING"] == 0
    assert counts["FAIL"] == 1  # the killed trial: failed as stale and replaced, not counted
    info = json.loads((second / "trial.json").read_text())
    assert info["state"] == "failed" and "killed" in info["reason"]
    summary = json.loads((out / "study.json").read_text())
    assert summary["counts"]["COMPLETE"] == 3 and len(params) == 3
    # running the finished study again runs nothing more
    again = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert again.returncode == 0 and "(0 run now)" in again.stdout, again.stderr[-2000:]
    assert finished_params(storage, "tiny")[1] == counts


def test_two_workers_never_repeat_a_grid_point(tmp_path: Path, small_corpus: Path) -> None:
    recipe = write_yaml(tmp_path / "tiny.yaml", tiny_recipe(small_corpus))
    lrs, decays = [1e-3, 3e-3, 6e-3], [0.0, 0.1]
    space = write_yaml(tmp_path / "space.yaml", {
        "optim.lr": {"type": "categorical", "choices": lrs},
        "optim.weight_decay": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.1}})
    out, storage = tmp_path / "study", f"sqlite:///{tmp_path}/study.db"
    done = subprocess.run(_tune(recipe, space, out, storage, "--sampler", "grid", "--workers", "2", "--pruner", "none"),
                          env=cli_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    params, counts = finished_params(storage, "tiny")
    points = sorted(json.dumps(p, sort_keys=True) for p in params)
    grid = sorted(json.dumps({"optim.lr": lr, "optim.weight_decay": wd}, sort_keys=True)
                  for lr, wd in itertools.product(lrs, decays))
    assert points == grid  # each of the 6 points exactly once: distinct, and the whole grid
    assert counts["COMPLETE"] == 6 and counts["FAIL"] == 0 and counts["RUNNING"] == 0
    assert len(list(out.glob("trial_*"))) == 6
