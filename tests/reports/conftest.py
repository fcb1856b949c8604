"""Fixtures of the report and per-group tests: a tiny binary classifier fine-tuned from the tiny GPT run, with
test files whose rows carry a ``group`` field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from toy_data import make_topic_rows

WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "today"]
GROUPS = ("north", "south", "west")


def grouped_rows(n: int, seed: int) -> list[dict]:
    """Toy binary topic rows, each with a ``group`` (north, south, west cycling at a different period)."""
    rows = make_topic_rows(n, seed, WORDS, FILLER, 2)
    return [{**r, "group": GROUPS[(i // 2) % len(GROUPS)]} for i, r in enumerate(rows)]


@pytest.fixture(scope="session")
def binary_run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """The tiny character GPT fully fine-tuned for 6 steps on a binary topic task (test rows carry a group)."""
    from fromzero.finetune.runner import finetune

    folder = tmp_path_factory.mktemp("report-ft")
    files = {}
    for split, n, seed in (("train", 24, 0), ("validation", 8, 1), ("test", 15, 2)):
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in grouped_rows(n, seed)), encoding="utf-8")
    recipe = folder / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "seed": 0, "base": str(tiny_run), "task": {"max_len": 32, **{s: str(p) for s, p in files.items()}},
        "method": {"name": "full"}, "select_metric": "accuracy",
        "train": {"max_steps": 6, "batch_size": 8, "threads": 1, "log_every": 2, "eval_every": 3},
        "optim": {"lr": 3e-3, "warmup_steps": 0}}), encoding="utf-8")
    return finetune(recipe, out=folder / "ft", progress=False).run_dir
