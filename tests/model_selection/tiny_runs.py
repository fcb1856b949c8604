"""Toy topic data and a tiny classification recipe over the tiny GPT run, shared by the cross-validation,
ensemble and adversarial-training tests (imported by name: a conftest cannot be)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from toy_data import make_topic_rows

WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"], "music": ["song", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "small", "today"]


def write_rows(path: Path, n: int, seed: int) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in make_topic_rows(n, seed, WORDS, FILLER, 2)),
                    encoding="utf-8")
    return path


def tiny_recipe(base: Path, files: dict[str, Path], **changes: Any) -> dict[str, Any]:
    """A seconds-long full fine-tune of ``base`` on the topic task (``changes``: top-level keys replaced)."""
    recipe = {"seed": 0, "base": str(base), "task": {"max_len": 24, **{s: str(p) for s, p in files.items()}},
              "method": {"name": "full"}, "select_metric": "accuracy",
              "train": {"max_steps": 4, "batch_size": 8, "threads": 1, "log_every": 2, "eval_every": 2,
                        "eval_batches": 2, "ckpt_every": 0},
              "optim": {"lr": 3e-3, "warmup_steps": 0}}
    recipe.update(changes)
    return recipe


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path
