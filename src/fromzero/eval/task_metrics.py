"""Fine-tuning task metrics from the metric libraries: decoded predictions (``TaskOutputs``) -> numbers.

:func:`score_outputs` maps one split's predictions to metrics: scikit-learn accuracy, P/R/F1 macro and
micro and ROC-AUC for classification (multi-label: also macro and micro ROC-AUC of the sigmoid scores),
MSE / MAE / R^2 and Pearson / Spearman for regression, seqeval entity P/R/F1 for tagging, SQuAD exact
match / F1 for QA, exact match / F1 of generated replies for sft (``eval.sft_metrics``), sacrebleu corpus
BLEU and chrF plus whitespace-normalised exact match for seq2seq. Making the predictions is
``fromzero.finetune.predict``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fromzero.errors import DataError
from fromzero.eval.metrics import (
    classification_metrics,
    entity_metrics,
    multilabel_metrics,
    multilabel_roc_auc,
    qa_metrics,
    regression_metrics,
    roc_auc,
    translation_metrics,
)
from fromzero.eval.sft_metrics import sft_metrics
from fromzero.eval.task_outputs import TaskOutputs

Scorer = Callable[[TaskOutputs], dict[str, float]]  # one split's predictions -> named metrics

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def answer_level(golds: list[list[str]]) -> str:
    """``char`` when the gold answers are Chinese (no spaces between words: F1 over characters, as
    CMRC scores Chinese QA), else SQuAD's ``word``."""
    return "char" if any(_CJK.search(a) for answers in golds for a in answers) else "word"


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    """Share of hypotheses equal to their reference up to whitespace (runs collapsed, ends stripped; case and
    punctuation count): word accuracy for one-word seq2seq tasks such as Chinese -> pinyin."""
    if len(hypotheses) != len(references):
        raise DataError(f"exact match: {len(hypotheses)} hypotheses for {len(references)} references")
    hits = sum(h.split() == r.split() for h, r in zip(hypotheses, references, strict=True))
    return hits / len(references) if references else 0.0


def score_outputs(out: TaskOutputs) -> dict[str, float]:
    """Metrics of one split's predictions (rates in [0, 1]; see ``eval.metrics``)."""
    if out.kind == "token_classification":
        return entity_metrics(out.y_true, out.y_pred)
    if out.kind == "span_qa":
        return qa_metrics(out.y_pred, out.y_true, level=answer_level(out.y_true))
    if out.kind == "sft":  # generated replies: exact match and token F1 (eval.sft_metrics)
        return sft_metrics(out)
    if out.kind == "seq2seq":  # sacrebleu corpus scores: BLEU (13a tokenizer) and chrF, 0-100; exact match rate
        return {**translation_metrics(out.y_pred, out.y_true), "exact_match": exact_match(out.y_pred, out.y_true)}
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
