"""k-shot prompting: the batched label scores equal a naive forward pass per label (sum of the label tokens'
log-probabilities), prompts are built as written by hand, and shot draws are seeded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fromzero.data.task_data import TextExample
from fromzero.errors import ConfigError
from fromzero.eval.few_shot import (
    PromptTemplate,
    build_prompt,
    evaluate_few_shot,
    few_shot_predictions,
    label_log_likelihoods,
)
from fromzero.runs import load_run

LABELS = ["HUM", "LOC", "NUM"]


def _naive(model, context: list[int], cont: list[int], max_len: int | None) -> float:
    """One forward pass per label: sum over the label's tokens of log p(token | everything before it)."""
    ids = (context + cont)[-max_len:] if max_len else context + cont
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids]))[0].double(), dim=-1)  # (T, V)
    start = len(ids) - len(cont)
    return float(sum(logp[t - 1, ids[t]] for t in range(start, len(ids))))


@pytest.mark.parametrize(("prompt", "max_len"), [("Q: Where?\nT:", None),  # the whole prompt fits
                                                  ("Question: Where is Longbourn?\nType:", 20)])  # cut from the left
def test_scores_equal_naive_per_label_sums(tiny_run: Path, prompt: str, max_len: int | None) -> None:
    run = load_run(tiny_run)
    context = run.tokenizer.encode(prompt)
    conts = [run.tokenizer.encode(" " + y) for y in ["HUM", "LOC", "NUMBER", "a"]]  # different lengths
    got = label_log_likelihoods(run.model, context, conts, max_len)
    want = [_naive(run.model, context, c, max_len) for c in conts]
    assert got.tolist() == pytest.approx(want, abs=1e-4)


def test_prompt_as_written_by_hand() -> None:
    template = PromptTemplate()
    context, space = build_prompt(template, [("Who is he ?", "HUM"), ("How far ?", "NUM")], "Where is it ?")
    assert context == ("Question: Who is he ?\nType: HUM\n\nQuestion: How far ?\nType: NUM\n\n"
                       "Question: Where is it ?\nType:")
    assert space == " "
    assert build_prompt(PromptTemplate("{text} => {label};"), [], "x") == ("x =>", " ")


@pytest.mark.parametrize("bad", ["{label} {text}", "no fields", "{text} {text} {label}"])
def test_bad_template(bad: str) -> None:
    with pytest.raises(ConfigError, match="--template"):
        PromptTemplate(bad)


def test_predictions_are_the_naive_argmax_and_seeded(tiny_run: Path) -> None:
    run = load_run(tiny_run)
    train = [TextExample(f"Question number {i} ?", LABELS[i % 3]) for i in range(6)]
    queries = [TextExample("Who wrote it ?", "HUM"), TextExample("Where is Pemberley ?", "LOC")]
    preds = few_shot_predictions(run, train, queries, LABELS, k=0, progress=False)
    block = run.model_config.block_size
    for q, p in zip(queries, preds, strict=True):
        context, space = build_prompt(PromptTemplate(), [], q.text)
        ctx = run.tokenizer.encode(context)
        scores = [_naive(run.model, ctx, run.tokenizer.encode(space + y), block) for y in LABELS]
        assert p == max(range(3), key=scores.__getitem__)
    a = few_shot_predictions(run, train, queries * 3, LABELS, k=2, seed=1, progress=False)
    assert a == few_shot_predictions(run, train, queries * 3, LABELS, k=2, seed=1, progress=False)
    with pytest.raises(ConfigError, match="--k: 7 shots"):
        few_shot_predictions(run, train, queries, LABELS, k=7, progress=False)


def test_evaluate_reports_every_k(tiny_run: Path, tmp_path: Path) -> None:
    rows = [{"text": f"Who is person {i} ?", "label": LABELS[i % 3]} for i in range(6)]
    for name in ("train", "test"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = evaluate_few_shot(tiny_run, tmp_path / "test.jsonl", tmp_path / "train.jsonl", [0, 1], limit=3,
                               progress=False)
    assert report["examples"] == 3 and report["labels"] == LABELS and set(report["k"]) == {"0", "1"}
    for row in report["k"].values():
        assert sum(row["predicted"].values()) == 3 and 0.0 <= row["accuracy"] <= 1.0


def test_not_a_language_model_run(tiny_bert_run: Path, tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(json.dumps({"text": "a", "label": "A"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a pretrained language-model run"):
        evaluate_few_shot(tiny_bert_run, tmp_path / "train.jsonl", tmp_path / "train.jsonl", [0], progress=False)
