"""Fixtures of the cross-validation, ensemble and adversarial-training tests: the toy topic files and two
tiny fine-tuned classifiers (seconds each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_selection.tiny_runs import tiny_recipe, write_recipe, write_rows


@pytest.fixture(scope="session")
def topic_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train (24 rows, 8 per class), validation (9) and test (12) files of the toy 3-class topic task."""
    folder = tmp_path_factory.mktemp("topics")
    return {split: write_rows(folder / f"{split}.jsonl", n, seed)
            for split, n, seed in (("train", 24, 0), ("validation", 9, 1), ("test", 12, 2))}


@pytest.fixture(scope="session")
def member_runs(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, topic_files) -> list[Path]:
    """Two tiny classifiers fine-tuned from the tiny GPT with different seeds (the ensemble members)."""
    from fromzero.finetune.runner import finetune

    folder = tmp_path_factory.mktemp("members")
    runs = []
    for seed in (0, 1):
        recipe = write_recipe(folder / f"seed{seed}.yaml", tiny_recipe(tiny_run, topic_files, seed=seed))
        runs.append(finetune(recipe, out=folder / f"seed{seed}", progress=False).run_dir)
    return runs
