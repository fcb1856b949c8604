"""Per-group metrics (``fromzero eval RUN --group-by FIELD``): hand-computed values, the field reader, and the
command end to end on a tiny fine-tuned binary classifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.data.task_data import read_field
from fromzero.errors import DataError
from fromzero.eval.group_metrics import format_group_table, group_metrics


def test_group_metrics_match_hand_computed_values() -> None:
    # group a: true 0 1 1, pred 0 1 0 -> accuracy 2/3; F1(class 0) = 2/3 (P 1/2, R 1), F1(class 1) = 2/3
    # group b: true 0 1 0 0, pred 1 1 0 0 -> accuracy 3/4; F1(0) = 0.8 (P 1, R 2/3), F1(1) = 2/3 (P 1/2, R 1)
    y_true, y_pred = [0, 1, 1, 0, 1, 0, 0], [0, 1, 0, 1, 1, 0, 0]
    groups = ["a", "a", "a", "b", "b", "b", "b"]
    result = group_metrics(y_true, y_pred, groups, ["neg", "pos"])
    a, b = result["per_group"]["a"], result["per_group"]["b"]
    assert (a["examples"], b["examples"]) == (3, 4)
    assert a["accuracy"] == pytest.approx(2 / 3) and b["accuracy"] == pytest.approx(3 / 4)
    assert a["f1_macro"] == pytest.approx(2 / 3) and b["f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert result["gaps"]["accuracy"] == {"gap": pytest.approx(1 / 12), "highest": "b", "lowest": "a"}
    assert result["gaps"]["f1_macro"]["gap"] == pytest.approx(1 / 15)
    # predicted "pos" rate: a 1/3, b 2/4 -> demographic-parity difference 1/6
    assert (a["positive_rate"], b["positive_rate"]) == (pytest.approx(1 / 3), pytest.approx(1 / 2))
    assert result["demographic_parity_difference"] == pytest.approx(1 / 6)
    assert result["positive_label"] == "pos"


def test_three_classes_have_no_parity_entry_and_equal_groups_have_no_gap() -> None:
    result = group_metrics([0, 1, 2, 0, 1, 2], [0, 1, 2, 0, 1, 2], ["x", "x", "x", "y", "y", "y"], ["a", "b", "c"])
    assert "demographic_parity_difference" not in result
    assert all(g["gap"] == 0 for g in result["gaps"].values())
    with pytest.raises(DataError, match="one group per example"):
        group_metrics([0, 1], [0, 1], ["x"], ["a", "b"])


def test_read_field_keys_values_by_line_in_jsonl_and_tsv(tmp_path: Path) -> None:
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "a", "label": "x", "group": "g1"}\n\n{"text": "b", "label": "y", "group": 7}\n',
                     encoding="utf-8")
    assert read_field(jsonl, "group") == {f"{jsonl}:1": "g1", f"{jsonl}:3": "7"}
    tsv = tmp_path / "t.tsv"
    tsv.write_text("text\tlabel\tdialect\nhello\tx\tscots\n\nbye\ty\twelsh\n", encoding="utf-8")
    assert read_field(tsv, "dialect") == {f"{tsv}:2": "scots", f"{tsv}:4": "welsh"}
    jsonl.write_text('{"text": "a", "label": "x", "group": "g1"}\n{"text": "b", "label": "y"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{jsonl}:2: missing field 'group'"):
        read_field(jsonl, "group")


def test_eval_group_by_on_a_fine_tuned_run(binary_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval", str(binary_run), "--no-progress"]) == 0  # the overall test metrics, independently
    overall = json.loads((binary_run / "eval.json").read_text())["test"]["metrics"]
    capsys.readouterr()
    assert main(["eval", str(binary_run), "--group-by", "group", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    entry = json.loads((binary_run / "eval.json").read_text())["groups"]
    rows = [json.loads(line) for line in (binary_run / "data" / "test.jsonl").read_text().splitlines()]
    counts = {g: sum(r["group"] == g for r in rows) for g in {r["group"] for r in rows}}
    assert {g: v["examples"] for g, v in entry["per_group"].items()} == counts
    # the per-group accuracies, weighted by group size, give back the overall test accuracy
    weighted = sum(v["accuracy"] * v["examples"] for v in entry["per_group"].values()) / len(rows)
    assert weighted == pytest.approx(overall["accuracy"]) == pytest.approx(entry["overall"]["accuracy"])
    rates = [v["positive_rate"] for v in entry["per_group"].values()]
    assert entry["demographic_parity_difference"] == pytest.approx(max(rates) - min(rates))
    accs = [v["accuracy"] for v in entry["per_group"].values()]
    assert entry["gaps"]["accuracy"]["gap"] == pytest.approx(max(accs) - min(accs))
    assert printed.splitlines()[:len(format_group_table(entry))] == format_group_table(entry)
    assert "south" in printed and "demographic-parity difference" in printed
    assert "per-group metrics" in (binary_run / "report.html").read_text()


def test_eval_group_by_another_file(binary_run: Path, tmp_path: Path) -> None:
    rows = [{"text": "we saw the ball", "label": "sport", "group": "x"},
            {"text": "soup today", "label": "food", "group": "y"}, {"text": "big goal", "label": "sport", "group": "y"}]
    data = tmp_path / "other.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["eval", str(binary_run), "--group-by", "group", "--data", str(data), "--no-progress"]) == 0
    entry = json.loads((binary_run / "eval.json").read_text())["groups"]
    assert entry["source"] == str(data)
    assert {g: v["examples"] for g, v in entry["per_group"].items()} == {"x": 1, "y": 2}
