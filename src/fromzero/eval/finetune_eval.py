"""Scoring fine-tuned runs with the metric libraries: ``fromzero finetune`` and ``fromzero eval`` on its run.

:func:`score_outputs` maps decoded predictions (``train.finetune_data.TaskOutputs``)
to metrics: scikit-learn accuracy, P/R/F1 macro and micro and ROC-AUC for
classification (multi-label: also macro and micro ROC-AUC of the sigmoid scores), MSE / MAE / R^2 and
Pearson / Spearman for regression, seqeval entity P/R/F1 for tagging, SQuAD exact match / F1 for
QA, exact match / F1 of generated replies for sft, sacrebleu corpus BLEU and chrF for seq2seq
(whose test translations also go to ``samples_test.tsv``). :func:`evaluate_finetuned_run` loads a
run directory from disk and scores
its test copy into ``eval.json`` (key ``test``) with a confusion-matrix PNG,
so ``fromzero eval`` on a fine-tuned run reproduces what ``fromzero finetune``
wrote.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.errors import DataError
from fromzero.eval.metrics import (
    classification_metrics,
    confusion,
    entity_metrics,
    multilabel_metrics,
    multilabel_roc_auc,
    plot_confusion_matrix,
    qa_metrics,
    regression_metrics,
    roc_auc,
    translation_metrics,
)
from fromzero.eval.sft_eval import sft_metrics, sft_test_report
from fromzero.train.finetune import finetune, finetuned_task_data, load_finetuned
from fromzero.train.finetune_data import TaskOutputs, task_outputs

CONFUSION_PNG = "plots/confusion_test.png"
SAMPLES_TSV = "samples_test.tsv"


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def answer_level(golds: list[list[str]]) -> str:
    """``char`` when the gold answers are Chinese (no spaces between words: F1 over characters, as
    CMRC scores Chinese QA), else SQuAD's ``word``."""
    return "char" if any(_CJK.search(a) for answers in golds for a in answers) else "word"


def score_outputs(out: TaskOutputs) -> dict[str, float]:
    """Metrics of one split's predictions (rates in [0, 1]; see ``eval.metrics``)."""
    if out.kind == "token_classification":
        return entity_metrics(out.y_true, out.y_pred)
    if out.kind == "span_qa":
        return qa_metrics(out.y_pred, out.y_true, level=answer_level(out.y_true))
    if out.kind == "sft":  # generated replies: exact match and token F1 (eval.sft_eval)
        return sft_metrics(out)
    if out.kind == "seq2seq":  # sacrebleu corpus scores: BLEU (13a tokenizer) and chrF, 0-100
        return translation_metrics(out.y_pred, out.y_true)
    if out.problem == "regression":
        return regression_metrics(out.y_true, out.y_pred)
    if out.problem == "multi_label":
        metrics = multilabel_metrics(out.y_true, out.y_pred)
        for average in ("macro", "micro"):
            try:
                metrics[f"roc_auc_{average}"] = multilabel_roc_auc(out.y_true, out.scores, average)
            except DataError:  # a constant label column: that AUC is undefined, the rest still holds
                metrics[f"roc_auc_{average}_skipped"] = 1.0
        return metrics
    metrics = classification_metrics(out.y_true, out.y_pred, labels=list(range(len(out.label_names or []))) or None)
    try:
        metrics.update(roc_auc(out.y_true, out.scores))
    except DataError:  # a class absent from this split: AUC is undefined, the rest still holds
        metrics["roc_auc_skipped"] = 1.0
    return metrics


def _confusion(run_path: Path, out: TaskOutputs) -> dict[str, Any]:
    if out.kind != "sequence_classification" or out.problem != "single_label":
        return {}
    ids = list(range(len(out.label_names)))
    matrix = confusion(out.y_true, out.y_pred, ids)
    plot_confusion_matrix(matrix, out.label_names, run_path / CONFUSION_PNG, title=f"{run_path.name}: test")
    return {"confusion_matrix": matrix, "labels": out.label_names, "confusion_png": CONFUSION_PNG}


def _samples(run_path: Path, out: TaskOutputs) -> dict[str, Any]:
    """seq2seq: write source, reference and output of every example as a TSV with a header."""
    if out.kind != "seq2seq":
        return {}
    flat = [(" ".join(s.split()), " ".join(r.split()), " ".join(h.split()))  # no tab or newline inside a cell
            for s, r, h in zip(out.sources, out.y_true, out.y_pred, strict=True)]
    write_text(run_path / SAMPLES_TSV, "source\treference\thypothesis\n" + "".join("\t".join(row) + "\n"
                                                                                  for row in flat))
    return {"samples": SAMPLES_TSV}


def evaluate_finetuned_run(run_dir: str | Path, batch_size: int = 64) -> dict[str, Any]:
    """Load a fine-tuned run, score its test split, and (re)write ``eval.json``'s ``test`` entry; returns it."""
    run = load_finetuned(run_dir)
    data = finetuned_task_data(run, "test")
    out = task_outputs(run.model, data, "test", batch_size)
    result = {"metrics": score_outputs(out), "examples": len(out.y_true), **_confusion(run.path, out),
              **_samples(run.path, out),
              "truncation": str(data.truncation["test"])}
    if out.kind == "sft":
        result.update(sft_test_report(run.path, run.info, out))
    path = run.path / "eval.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved["test"] = result
    for key in ("method", "trainable_parameters", "total_parameters", "trainable_percent", "peak_rss_mb",
                "train_rss_delta_mb", "memory_method", "train_wall_s", "steps", "best_step", "best_validation"):
        if key in run.info:
            saved.setdefault("training", {})[key] = run.info[key]
    write_text(path, json.dumps(saved, indent=1))
    return saved


def run_finetune(recipe_path: str | Path | None, overrides: list[str] | None = None, *,
                 out: str | Path | None = None, progress: bool = True,
                 resume: bool = False) -> tuple[Path, dict[str, Any]]:
    """``fromzero finetune``: train with validation-metric selection (``resume``: continue an interrupted
    run from its latest checkpoint), then score the test split."""
    result = finetune(recipe_path, overrides, scorer=score_outputs, out=out, progress=progress, resume=resume)
    return result.run_dir, evaluate_finetuned_run(result.run_dir)
