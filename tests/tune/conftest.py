"""Fixtures of the tune tests: the tiny recipe written to a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune.tiny_study import tiny_recipe, write_yaml


@pytest.fixture()
def recipe(tmp_path: Path, small_corpus: Path) -> Path:
    """The tiny pretraining recipe as ``tmp_path/tiny.yaml``."""
    return write_yaml(tmp_path / "tiny.yaml", tiny_recipe(small_corpus))
