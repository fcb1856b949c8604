"""Zero-shot classification: the prediction is the naive argmax of cosine similarities, each text and each
description embedded alone (no batching, no padding); bad label files fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fromzero.errors import DataError
from fromzero.eval.zero_shot import evaluate_zero_shot, read_label_descriptions, zero_shot_scores
from fromzero.runs import load_run

LABELS = {"people": "a person who wrote or married someone", "places": "a house, a town or the country",
          "money": "an income of pounds a year"}
ROWS = [("Mr. Darcy married Elizabeth", "people"), ("they walked to the town of Meryton", "places"),
        ("ten thousand pounds a year", "money"), ("Netherfield Park is let at last", "places"),
        ("Jane wrote a letter to her sister", "people")]


def _alone(run, text: str) -> np.ndarray:
    ids = torch.tensor([run.tokenizer.encode(text, add_special_tokens=True)])
    with torch.no_grad():
        mean = run.model.hidden_states(ids)[0].mean(0)  # (C,): no padding, a plain mean
    return (mean / mean.norm()).numpy()


def _write(tmp_path: Path, labels: dict[str, str], rows: list[tuple[str, str]]) -> tuple[Path, Path]:
    lab = tmp_path / "labels.yaml"
    lab.write_text("".join(f"{k}: {v}\n" for k, v in labels.items()), encoding="utf-8")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows), encoding="utf-8")
    return lab, data


def test_scores_and_predictions_equal_naive_cosine(tiny_bert_run: Path, tmp_path: Path) -> None:
    run = load_run(tiny_bert_run)
    texts = [t for t, _ in ROWS]
    scores = zero_shot_scores(run, texts, list(LABELS.values()), progress=False)  # batched, padded
    naive = np.array([[float(_alone(run, t) @ _alone(run, d)) for d in LABELS.values()] for t in texts])
    np.testing.assert_allclose(scores, naive, atol=1e-5)
    lab, data = _write(tmp_path, LABELS, ROWS)
    report = evaluate_zero_shot(tiny_bert_run, data, lab, progress=False)
    names = list(LABELS)
    gold = [names.index(y) for _, y in ROWS]
    expected = float(np.mean(naive.argmax(1) == np.array(gold)))
    assert report["metrics"]["accuracy"] == pytest.approx(expected)
    assert sum(v["predicted"] for v in report["per_label"].values()) == len(ROWS)
    assert [report["per_label"][n]["predicted"] for n in names] == [int((naive.argmax(1) == i).sum())
                                                                   for i in range(3)]


def test_label_without_description_names_the_row(tiny_bert_run: Path, tmp_path: Path) -> None:
    lab, data = _write(tmp_path, LABELS, [*ROWS, ("who is she", "persons")])
    with pytest.raises(DataError, match=r"data.jsonl:6: label 'persons' has no description"):
        evaluate_zero_shot(tiny_bert_run, data, lab, progress=False)


@pytest.mark.parametrize(("text", "message"), [
    ("", "expected a YAML mapping"), ("- a\n- b\n", "expected a YAML mapping"), ("a: x\n", "one label only"),
    ("a: x\nb:\n", "label 'b': the description must be non-empty"), ("a: [x\n", "invalid YAML")])
def test_bad_label_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_label_descriptions(path)
    with pytest.raises(DataError, match="labels file not found"):
        read_label_descriptions(tmp_path / "missing.yaml")


def test_descriptions_keep_file_order(tmp_path: Path) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text("b: second first\na: then this\n", encoding="utf-8")
    assert read_label_descriptions(path) == {"b": "second first", "a": "then this"}
