"""`fromzero cv` (tune/cross_validation.py): stratified folds keep every class's share, each fold is a normal run
tested on its held-out fold, cv.json's mean and standard deviation equal the hand-computed ones over the folds'
own eval.json, a resumed cross-validation reuses finished folds, and bad inputs fail before anything is written."""

from __future__ import annotations

import json
import shutil
import statistics
from collections import Counter
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.data.task_data import TextExample, read_text_classification
from fromzero.errors import ConfigError
from fromzero.tune.cross_validation import CVOptions, cross_validate, fold_indices
from model_selection.tiny_runs import tiny_recipe, write_recipe


def examples(labels: list[str]) -> list[TextExample]:
    return [TextExample(f"text {i}", label) for i, label in enumerate(labels)]


def test_stratified_folds_partition_the_data_and_keep_class_shares() -> None:
    rows = examples(["a"] * 8 + ["b"] * 4 + ["c"] * 12)
    folds = fold_indices(rows, 4, seed=3, stratified=True)
    held = [i for _, te in folds for i in te]
    assert sorted(held) == list(range(24))  # every example held out exactly once
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == 24
        assert Counter(rows[i].label for i in test) == {"a": 2, "b": 1, "c": 3}
    assert fold_indices(rows, 4, seed=3, stratified=True) == folds  # seeded
    assert fold_indices(rows, 4, seed=4, stratified=True) != folds


def test_plain_kfold_for_regression_labels() -> None:
    rows = examples([str(i / 10) for i in range(10)])
    folds = fold_indices(rows, 3, seed=0, stratified=False)
    assert sorted(len(te) for _, te in folds) == [3, 3, 4]
    assert sorted(i for _, te in folds for i in te) == list(range(10))


@pytest.fixture(scope="module")
def cv_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, topic_files) -> Path:
    folder = tmp_path_factory.mktemp("cv")
    return write_recipe(folder / "topics.yaml", tiny_recipe(tiny_run, topic_files))


def test_cv_runs_every_fold_and_summarises_them(cv_recipe: Path, topic_files, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cv"
    assert main(["cv", str(cv_recipe), "--folds", "2", "--seed", "1", "--out", str(out), "--no-progress",
                 "--train.max_steps=2"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "cv.json").read_text())
    assert summary["splitter"] == "StratifiedKFold" and summary["fold_sizes"] == [{"train": 12, "heldout": 12}] * 2
    train_rows = read_text_classification(topic_files["train"])
    seen = []
    for i in range(2):
        run = out / f"fold_{i}"
        assert (run / "finetune.json").is_file()  # a normal, finished run directory
        held = read_text_classification(out / "splits" / f"fold_{i}" / "heldout.jsonl")
        assert Counter(e.label for e in held) == {"sport": 4, "food": 4, "music": 4}
        seen += [(e.text, e.label) for e in held]
        test = json.loads((run / "eval.json").read_text())["test"]
        assert test["examples"] == 12  # tested on its held-out fold, not the recipe's test file
        assert json.loads((run / "finetune.json").read_text())["steps"] == 2  # the overrides reached every fold
    assert sorted(seen) == sorted((e.text, e.label) for e in train_rows)
    per_fold = [json.loads((out / f"fold_{i}" / "eval.json").read_text())["test"]["metrics"] for i in range(2)]
    for name in ("accuracy", "f1_macro"):
        values = [m[name] for m in per_fold]
        assert summary["metrics"][name]["mean"] == pytest.approx(statistics.mean(values))
        assert summary["metrics"][name]["std"] == pytest.approx(statistics.stdev(values))
    assert f"{summary['metrics']['accuracy']['mean']:.4f}" in printed and "std" in printed

    # resume: a finished fold is reused as it is, a missing one trains again (deterministic: the same result)
    shutil.rmtree(out / "fold_1")
    (out / "cv.json").unlink()
    before = (out / "fold_0" / "model.safetensors").stat().st_mtime_ns
    again = cross_validate(cv_recipe, ["--train.max_steps=2"], CVOptions(folds=2, seed=1, out=str(out), resume=True),
                           show=False)
    assert (out / "fold_0" / "model.safetensors").stat().st_mtime_ns == before
    assert again["per_fold"] == summary["per_fold"]
    with pytest.raises(ConfigError, match="--folds"):
        cross_validate(cv_recipe, [], CVOptions(folds=3, seed=1, out=str(out), resume=True), show=False)


@pytest.mark.parametrize(("folds", "message"), [
    (1, "--folds: must be >= 2"),
    (9, "--folds 9: class 'food' has only 8 examples"),
])
def test_bad_fold_counts_fail_before_writing(folds: int, message: str, cv_recipe: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        cross_validate(cv_recipe, [], CVOptions(folds=folds, out=str(tmp_path / "cv")), show=False)
    assert not (tmp_path / "cv").exists()


def test_non_classification_recipes_are_refused(cv_recipe: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sequence_classification"):
        cross_validate(cv_recipe, ["--task.kind=token_classification", "--select_metric=f1"],
                       CVOptions(folds=2, out=str(tmp_path / "cv")), show=False)
    assert not (tmp_path / "cv").exists()
