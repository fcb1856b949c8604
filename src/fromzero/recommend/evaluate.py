"""``fromzero eval`` and ``fromzero info`` on a recommender run: its test scores recomputed from the run
directory alone (the saved split and weights), and what the run is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.recommend.tasks import RunData, test_metrics
from fromzero.runs import read_run_json
from fromzero.runs.recommender import RECOMMEND_INFO, load_recommender

EVAL_FILE = "eval.json"


def evaluate_recommender_run(run_dir: str | Path, progress: bool = True) -> dict[str, float]:
    """Full-ranking test metrics of a finished recommender run (rewritten into eval.json)."""
    run = load_recommender(run_dir)
    data = RunData(run.data, run.split, None, int(run.info["history_length"]))
    metrics = test_metrics(run.model, data, run.info["loss"], int(run.info["k"]), progress)
    write_text(Path(run_dir) / EVAL_FILE, json.dumps({"test": metrics}, indent=1))
    return metrics


def _numbers(metrics: dict[str, Any], prefix: str = "") -> str:
    return ", ".join(f"{k.removeprefix(prefix)} {v:.4f}" for k, v in metrics.items()
                     if isinstance(v, float) and k != "val_ppl")


def describe_recommender_run(run_dir: str | Path) -> list[str]:
    """Lines describing a recommender run: family and loss, data, training, best validation, test."""
    path = Path(run_dir)
    info = read_run_json(path / RECOMMEND_INFO)
    counts = info.get("interactions") or {}
    steps = f"{info['steps']} steps" if info.get("steps") is not None else "counted (no gradient steps)"
    lines = [f"recommender run: {info['family']} trained with {info['loss']} ({info.get('parameters', 0):,} "
             "parameters)",
             f"data: {info.get('users')} users, {info.get('items')} items; ratings train / validation / test "
             f"{counts.get('train')} / {counts.get('validation')} / {counts.get('test')}; history length "
             f"{info['history_length']}" + (f"; {len(info['feature_names'])} item features"
                                           if info.get("feature_names") else ""),
             f"training: {steps}, {info.get('train_wall_s', 0):.1f}s; best step {info.get('best_step')} by "
             f"{info.get('select_metric')}"]
    if info.get("best_validation"):
        lines.append("best validation: " + _numbers(info["best_validation"], "val_"))
    if (path / EVAL_FILE).is_file():
        lines.append("test: " + _numbers(read_run_json(path / EVAL_FILE).get("test") or {}))
    return lines
