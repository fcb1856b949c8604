"""Fixtures of the report and per-group tests: a tiny binary classifier fine-tuned from the tiny GPT run, with
test files whose rows carry a ``group`` field."""

from __future__ import annotations

from pathlib import Path

import pytest

from toy_data import finetune_topic_run, make_topic_rows

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
    splits = {split: grouped_rows(n, seed)
              for split, n, seed in (("train", 24, 0), ("validation", 8, 1), ("test", 15, 2))}
    return finetune_topic_run(tmp_path_factory.mktemp("report-ft"), tiny_run, splits, max_len=32, max_steps=6,
                              batch_size=8, log_every=2, eval_every=3)
