"""The dataset registry: every entry's preparer exists, `prepare-task --list` shows them all, names are checked."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.data.datasets import DATASETS, prepare_task_data
from fromzero.errors import DataError


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_entry_names_a_preparer(name: str) -> None:
    entry = DATASETS[name]
    module = importlib.import_module(f"fromzero.data.datasets.{entry.module}")  # no offline package imported here
    assert callable(getattr(module, entry.function))


def test_list_prints_every_dataset(capsys) -> None:
    assert main(["prepare-task", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(DATASETS)
    assert all(DATASETS[line.split()[0]].about in line for line in lines)


def test_unknown_dataset_points_to_the_list(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="prepare-task --list"):
        prepare_task_data("imagenet", tmp_path / "x")
    assert not (tmp_path / "x").exists()
