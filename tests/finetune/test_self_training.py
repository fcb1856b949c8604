"""Self-training: pseudo-label selection and its report by hand, config validation, and a tiny two-round
``fromzero self-train`` run on a tiny GPT whose self_training.json reports what each round added."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from fromzero.cli import main
from fromzero.config import InvalidValue
from fromzero.finetune.self_training import SelfTrainingConfig, round_report, select_pseudo_labels
from toy_data import make_topic_rows

PROBS = torch.tensor([
    [0.95, 0.03, 0.02],  # 0: class 0 at 0.95
    [0.10, 0.60, 0.30],  # 1: below threshold
    [0.01, 0.98, 0.01],  # 2: class 1 at 0.98
    [0.02, 0.02, 0.96],  # 3: class 2 at 0.96 (already taken below)
    [0.05, 0.05, 0.90],  # 4: class 2 at exactly the threshold
    [0.97, 0.02, 0.01],  # 5: class 0 at 0.97
])


def test_selection_threshold_and_order() -> None:
    rows, labels, conf = select_pseudo_labels(PROBS, 0.9)
    assert rows == [2, 5, 3, 0, 4]  # most confident first; 0.90 >= 0.90 qualifies, row 1 (0.60) does not
    assert labels == [1, 0, 2, 0, 2]
    assert conf == pytest.approx([0.98, 0.97, 0.96, 0.95, 0.90])


def test_selection_cap_and_already_taken() -> None:
    taken = torch.tensor([False, False, True, True, False, False])
    rows, labels, _ = select_pseudo_labels(PROBS, 0.9, max_per_round=2, already_taken=taken)
    assert rows == [5, 0] and labels == [0, 0]  # rows 2 and 3 were taken in an earlier round
    assert select_pseudo_labels(PROBS, 0.99) == ([], [], [])


def test_selection_per_class_balance() -> None:
    # qualifying: class 0 -> rows 5, 0; class 1 -> row 2; class 2 -> rows 3, 4: one each (class 1 has one)
    rows, labels, _ = select_pseudo_labels(PROBS, 0.9, per_class_balance=True)
    assert rows == [2, 5, 3] and labels == [1, 0, 2]


def test_round_report_accuracy() -> None:
    gold = [0, 1, 1, 0, None, 0]  # rows 2, 5 right; row 3 (gold 0) got 2; row 4 has no gold
    assert round_report([2, 5, 3, 4], [1, 0, 2, 2], gold) == {"added": 4, "with_gold": 3, "accuracy": 2 / 3}
    assert round_report([4], [2], gold) == {"added": 1, "with_gold": 0, "accuracy": None}
    assert round_report([], [], gold)["accuracy"] is None


@pytest.mark.parametrize(("kwargs", "key"), [({"rounds": 0}, "rounds"), ({"threshold": 1.5}, "threshold"),
                                             ({"max_per_round": 0}, "max_per_round")])
def test_config_validation(kwargs: dict, key: str) -> None:
    with pytest.raises(InvalidValue, match=f"^{key}:"):
        SelfTrainingConfig(**kwargs)


WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"], "music": ["song", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "today"]


def _rows(n: int, seed: int) -> list[dict[str, str]]:
    return make_topic_rows(n, seed, WORDS, FILLER, 2)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_self_train_cli_two_rounds(tiny_run: Path, tmp_path: Path, capsys) -> None:
    files = {s: _jsonl(tmp_path / f"{s}.jsonl", _rows(n, k)) for s, n, k in
             (("train", 12, 0), ("validation", 9, 1), ("test", 9, 2))}
    pool = _jsonl(tmp_path / "pool.jsonl", _rows(20, 3))  # gold labels present: reported, never trained on
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "seed": 0, "base": str(tiny_run), "task": {"max_len": 24, **{s: str(p) for s, p in files.items()}},
        "method": {"name": "full"}, "select_metric": "accuracy",
        "train": {"max_steps": 4, "batch_size": 6, "threads": 1, "log_every": 2, "eval_every": 2},
        "optim": {"lr": 3e-3, "warmup_steps": 0}}), encoding="utf-8")
    out = tmp_path / "st"
    # 3 classes: the top probability is always >= 1/3, so threshold 0.3 admits every row; the cap limits it
    assert main(["self-train", str(recipe), "--unlabeled", str(pool), "--rounds", "2", "--threshold", "0.3",
                 "--max-per-round", "8", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "self_training.json").read_text())
    assert report["config"] == {"rounds": 2, "threshold": 0.3, "max_per_round": 8, "per_class_balance": False}
    assert report["pool_size"] == 20 and [r["round"] for r in report["rounds"]] == [0, 1, 2]
    assert report["rounds"][0]["added"] == 0
    for r in report["rounds"][1:]:
        assert r["added"] == 8 and r["with_gold"] == 8 and 0.0 <= r["accuracy"] <= 1.0
        assert r["min_confidence"] >= 0.3
    assert [r["cumulative"] for r in report["rounds"]] == [0, 8, 16]
    for r in report["rounds"]:
        assert 0.0 <= r["test"]["accuracy"] <= 1.0 and "val_accuracy" in r["validation"]
        assert (Path(r["run_dir"]) / "model.safetensors").is_file()
    # round r trains on the 12 labeled rows plus every pseudo label so far, with labels the model knows
    train_2 = [json.loads(x) for x in Path(report["rounds"][2]["train_file"]).read_text().splitlines()]
    assert len(train_2) == 12 + 16 and {r["label"] for r in train_2} <= set(WORDS)
    assert {r["text"] for r in train_2[12:]} <= {r["text"] for r in _rows(20, 3)}
    assert "pseudo-label accuracy" in capsys.readouterr().out
    bad = ["self-train", str(recipe), "--unlabeled", str(pool), "--threshold", "2", "--out", str(tmp_path / "no")]
    assert main(bad) == 2 and not (tmp_path / "no").exists()
    assert "argument --threshold: must be in [0.0, 1.0], got 2" in capsys.readouterr().err
