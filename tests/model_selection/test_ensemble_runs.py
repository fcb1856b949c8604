"""Ensembles (runs/ensemble.py, tune/ensemble.py): the combination rules against hand-computed values, the vote's
tie-breaking, an ensemble of identical members equals the member, and the ensemble run directory works through
`fromzero ensemble`, `fromzero eval` and the serving engine."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from fromzero.cli import main
from fromzero.errors import CheckpointError, ConfigError
from fromzero.runs import load_run
from fromzero.runs.ensemble import EnsembleClassifier, vote_scores
from fromzero.tune.ensemble import build_ensemble


class Fixed(nn.Module):
    """A 'classifier' that returns the same logits rows whatever the input (one row per example)."""

    def __init__(self, logits: list[list[float]]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits[: input_ids.shape[0]]


IDS = torch.zeros(2, 3, dtype=torch.long)


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [v / sum(exps) for v in exps]


def test_mean_and_weighted_equal_hand_computed_averages() -> None:
    a, b = [[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]], [[0.0, 3.0, 0.0], [1.0, 1.0, 1.0]]
    for method, weights in (("mean", None), ("weighted", [3.0, 1.0])):
        q = torch.softmax(EnsembleClassifier([Fixed(a), Fixed(b)], method, weights)(IDS), -1)
        wa, wb = (0.5, 0.5) if weights is None else (0.75, 0.25)
        for i in range(2):
            want = [wa * x + wb * y for x, y in zip(softmax(a[i]), softmax(b[i]), strict=True)]
            assert q[i].tolist() == pytest.approx(want, abs=1e-6)


def test_vote_majority_and_tie_breaking() -> None:
    # row 0: members vote 0, 0, 1 -> class 0 although member 3 is very sure of 1 (mean prob favours 1)
    # row 1: votes 1, 2, 0 (a three-way tie) -> the class with the highest mean probability: 2
    # row 2: votes 0, 1 (M = 2) with equal mean probabilities -> the lowest index, 0
    m1 = Fixed([[0.1, 0.0, -9.0], [0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    m2 = Fixed([[0.1, 0.0, -9.0], [0.0, 0.0, 5.0], [0.0, 2.0, 0.0]])
    m3 = Fixed([[-9.0, 9.0, -9.0], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    ids = torch.zeros(3, 2, dtype=torch.long)
    three = EnsembleClassifier([m1, m2, m3], "vote")(ids).argmax(-1)
    assert three[:2].tolist() == [0, 2]
    assert EnsembleClassifier([m1, m2], "vote")(ids)[2].argmax().item() == 0
    # the scores: (votes + mean / 2) / (M + 1/2), by hand for row 0
    probs = torch.stack([torch.softmax(m(ids), -1) for m in (m1, m2, m3)])
    mean = probs.mean(0)[0]
    want = (torch.tensor([2.0, 1.0, 0.0]) + 0.5 * mean) / 3.5
    torch.testing.assert_close(vote_scores(probs)[0], want)
    torch.testing.assert_close(torch.softmax(EnsembleClassifier([m1, m2, m3], "vote")(ids), -1)[0], want)


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        EnsembleClassifier([Fixed([[0.0]]), Fixed([[0.0]])], "weighted", [1.0, -1.0])


def test_ensemble_of_identical_members_equals_the_member(member_runs: list[Path], tmp_path: Path) -> None:
    run = member_runs[0]
    out = build_ensemble([run, run, run], "mean", tmp_path / "same", show=False)
    member = next(m["metrics"] for m in out["evaluation"]["members"])
    assert out["evaluation"]["ensemble"] == pytest.approx(member, abs=1e-6)
    ens, single = load_run(tmp_path / "same"), load_run(run)
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(ens.model(ids, attention_mask=mask), -1),
                                   torch.softmax(single.model(ids, attention_mask=mask), -1))
    for method in ("vote", "weighted"):
        res = build_ensemble([run, run], method, tmp_path / method, show=False)
        assert res["evaluation"]["ensemble"]["accuracy"] == member["accuracy"]
        assert res["weights"] == [0.5, 0.5]


def test_ensemble_run_through_the_cli_eval_and_serving(member_runs: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "ens"
    assert main(["ensemble", *map(str, member_runs), "--method", "mean", "--out", str(out), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "ensemble" in table and str(member_runs[1]) in table
    saved = json.loads((out / "ensemble.json").read_text())
    assert saved["members"] == ["members/0", "members/1"] and (out / "members/1/model.safetensors").is_file()

    shutil.move(str(out), tmp_path / "moved")  # self-contained: no reference to the members' folders
    for m in member_runs:
        assert m.is_dir()
    assert main(["eval", str(tmp_path / "moved"), "--no-progress"]) == 0
    capsys.readouterr()
    test = json.loads((tmp_path / "moved" / "eval.json").read_text())["test"]
    assert test["metrics"] == pytest.approx(saved["evaluation"]["ensemble"])
    assert main(["info", str(tmp_path / "moved")]) == 0
    assert "method: ensemble" in capsys.readouterr().out
    # the mean ensemble's probabilities are the members' averaged ones, through the serving engine too
    from fromzero.serve.engine import Engine

    engine, members = Engine.from_run_dir(tmp_path / "moved"), [Engine.from_run_dir(m) for m in member_runs]
    assert engine.kind == "classifier"
    (got,), parts = engine.classify(["we saw a ball"]), [e.classify(["we saw a ball"])[0] for e in members]
    for label in got.scores:
        assert got.scores[label] == pytest.approx(sum(p.scores[label] for p in parts) / 2, abs=1e-6)


def test_weighted_uses_the_validation_metric(member_runs: list[Path], tmp_path: Path) -> None:
    res = build_ensemble(member_runs, "weighted", tmp_path / "w", weight_metric="accuracy", show=False)
    values = [json.loads((m / "finetune.json").read_text())["best_validation"]["val_accuracy"] for m in member_runs]
    assert res["weights"] == pytest.approx([v / sum(values) for v in values])
    assert res["weight_metric"] == "accuracy"


def test_members_must_share_labels_and_be_classifiers(member_runs: list[Path], tiny_run: Path,
                                                      tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(member_runs[1], other)
    info = json.loads((other / "finetune.json").read_text())
    info["labels"] = list(reversed(info["labels"]))
    (other / "finetune.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="labels"):
        build_ensemble([member_runs[0], other], "mean", tmp_path / "x", show=False)
    with pytest.raises(CheckpointError, match="not a fine-tuned run"):
        build_ensemble([member_runs[0], tiny_run], "mean", tmp_path / "x", show=False)
    with pytest.raises(ConfigError, match="at least two"):
        build_ensemble([member_runs[0]], "mean", tmp_path / "x", show=False)
    assert not (tmp_path / "x").exists()
