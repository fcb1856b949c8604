"""A tiny pretraining recipe (1-layer, 16-wide char GPT, a few steps) and helpers for tune studies."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

SRC = Path(__file__).resolve().parents[2] / "src"
PYTHON = sys.executable


def tiny_recipe(corpus: Path, max_steps: int = 4, eval_every: int = 2) -> dict[str, Any]:
    """A pretraining recipe that trains in about a second on one core."""
    return {"seed": 0,
            "model": {"name": "gpt-char-tiny", "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32,
                      "dropout": 0.0},
            "data": {"inputs": [str(corpus)], "tokenizer": {"kind": "char"}, "val_fraction": 0.1},
            "train": {"max_steps": max_steps, "batch_size": 8, "threads": 1, "log_every": 2,
                      "eval_every": eval_every, "eval_batches": 2, "ckpt_every": 0, "keep_last": 0},
            "optim": {"lr": 3e-3, "warmup_steps": 0, "weight_decay": 0.1},
            "sample": {"prompts": []}}


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def cli_env() -> dict[str, str]:
    """The environment of a ``python -m fromzero`` subprocess over this checkout's sources, one thread."""
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def finished_params(storage: str, name: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(params of every COMPLETE or PRUNED trial, trial count per state) read straight from the storage."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    return [t.params for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)], counts
