"""Task metrics as thin wrappers over established libraries; every function returns plain Python numbers.

    classification   scikit-learn: accuracy, precision / recall / F1 (macro and micro), ROC-AUC
                     (binary; multi-class one-vs-rest; multi-label macro and micro), confusion matrix
    regression       scikit-learn: MSE, MAE, R^2; scipy.stats: Pearson and Spearman correlation
    tagging (NER)    seqeval: entity-level precision / recall / F1 from BIO tag sequences
    translation      sacrebleu: corpus BLEU and chrF
    extractive QA    SQuAD v1.1's official exact match and token F1 (re-implemented: the
                     script is not a package), max over the gold answers

Scales: rates (accuracy, precision, recall, F1, ROC-AUC, exact match, QA F1)
are fractions in [0, 1]; BLEU and chrF are on sacrebleu's 0-100 scale, the
one papers report. Precision/recall/F1 of a class never predicted count as 0
(scikit-learn's ``zero_division=0``), so they are never silently undefined.
"""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from fromzero.atomic import write_with
from fromzero.errors import DataError


def _check_lengths(a: Sequence, b: Sequence, what: str) -> None:
    if len(a) != len(b):
        raise DataError(f"{what}: {len(a)} references but {len(b)} predictions; pass one prediction per example")
    if len(a) == 0:
        raise DataError(f"{what}: no examples to score")


# ----------------------------------------------------------------------------------------- classification


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int],
                           labels: Sequence[int] | None = None) -> dict[str, float]:
    """accuracy and precision / recall / F1, macro (mean over classes) and micro (over all decisions).

    ``labels``: the classes to average over (default: those present in either
    sequence); a class absent from both still counts in the macro average.
    For single-label data micro P = R = F1 = accuracy.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    _check_lengths(y_true, y_pred, "classification metrics")
    out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average,
                                                     zero_division=0)
        out.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    return out


def multilabel_metrics(y_true: np.ndarray | Sequence[Sequence[int]], y_pred: np.ndarray | Sequence[Sequence[int]]
                       ) -> dict[str, float]:
    """Multi-label 0/1 indicator matrices (N, K): subset accuracy (all K right) and macro/micro P/R/F1."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check_lengths(y_true, y_pred, "multi-label metrics")
    out = {"subset_accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        out.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    return out


def roc_auc(y_true: Sequence[int], scores: np.ndarray | Sequence) -> dict[str, float]:
    """Area under the ROC curve: binary from scores (N,) or (N, 2), multi-class one-vs-rest from (N, K).

    Scores are the positive class's probability or logit for binary tasks; for
    K > 2 they must be probabilities (rows summing to 1, e.g. a softmax), and
    the result is the unweighted mean of the K one-vs-rest AUCs. Every class
    must occur in ``y_true``.
    """
    from sklearn.metrics import roc_auc_score

    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    _check_lengths(y_true, scores, "ROC-AUC")
    n_classes = 2 if scores.ndim == 1 else scores.shape[1]
    missing = sorted(set(range(n_classes)) - set(y_true.tolist()))
    if missing:
        raise DataError(f"ROC-AUC: class(es) {missing} never occur in the references; AUC needs every class "
                        "present (use a larger or stratified evaluation split)")
    if n_classes == 2:
        positive = scores if scores.ndim == 1 else scores[:, 1]
        return {"roc_auc": float(roc_auc_score(y_true, positive))}
    return {"roc_auc_ovr": float(roc_auc_score(y_true, scores, multi_class="ovr", average="macro",
                                               labels=list(range(n_classes))))}


def multilabel_roc_auc(y_true: np.ndarray | Sequence[Sequence[int]], scores: np.ndarray | Sequence,
                       average: Literal["macro", "micro"]) -> float:
    """ROC-AUC of multi-label indicator rows (N, K) against per-label scores (N, K), e.g. sigmoid outputs.

    ``macro``: the unweighted mean of the K per-label AUCs, so every label column must hold both 0 and
    1; ``micro``: one AUC over all N*K (label, score) pairs, defined when the flattened labels hold both.
    An undefined average is a :class:`DataError` naming the constant columns (callers record a flag).
    """
    from sklearn.metrics import roc_auc_score

    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    _check_lengths(y_true, scores, "multi-label ROC-AUC")
    if y_true.ndim != 2 or y_true.shape != scores.shape:
        raise DataError(f"multi-label ROC-AUC: labels {y_true.shape} and scores {scores.shape} must both be (N, K)")
    if average == "macro":
        constant = [k for k in range(y_true.shape[1]) if len(np.unique(y_true[:, k])) < 2]
        if constant:
            raise DataError(f"multi-label ROC-AUC (macro): label column(s) {constant} are constant in the "
                            "references; per-label AUC needs both 0 and 1 (use a larger evaluation split)")
    elif len(np.unique(y_true)) < 2:
        raise DataError("multi-label ROC-AUC (micro): every reference entry is the same; AUC needs both 0 and 1")
    return float(roc_auc_score(y_true, scores, average=average))


# ------------------------------------------------------------------------------------------- regression


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """mse, mae, r2 (scikit-learn) and Pearson / Spearman correlation (scipy.stats) of predicted values.

    A correlation is undefined when either side is constant (e.g. a model that predicts one value):
    then ``pearson`` and ``spearman`` are left out and ``correlation_skipped`` is 1.0, never a silent 0.
    """
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    _check_lengths(y_true, y_pred, "regression metrics")
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise DataError(f"regression metrics: expected one value per example, got shapes {y_true.shape} and "
                        f"{y_pred.shape}")
    out = {"mse": float(mean_squared_error(y_true, y_pred)), "mae": float(mean_absolute_error(y_true, y_pred)),
           "r2": float(r2_score(y_true, y_pred))}
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        out["correlation_skipped"] = 1.0
    else:
        out["pearson"] = float(pearsonr(y_true, y_pred).statistic)
        out["spearman"] = float(spearmanr(y_true, y_pred).statistic)
    return out


def confusion(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int]) -> list[list[int]]:
    """Confusion matrix as nested lists: entry [i][j] counts examples of class labels[i] predicted labels[j]."""
    from sklearn.metrics import confusion_matrix

    _check_lengths(y_true, y_pred, "confusion matrix")
    return confusion_matrix(y_true, y_pred, labels=list(labels)).tolist()


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], label_names: Sequence[str], path: str | Path, *,
                          normalize: bool = False, title: str = "confusion matrix") -> Path:
    """Draw a confusion matrix (rows: true class, columns: predicted) to a PNG, written atomically.

    Uses matplotlib's Agg canvas directly, so it never touches the global
    pyplot backend or needs a display. ``normalize`` shows each row as shares.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(label_names):
        raise ValueError(f"matrix of shape {m.shape} does not match {len(label_names)} label names")
    if normalize:
        m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = len(label_names)
    size = max(4.0, 0.5 * k + 2)
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(m, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(label_names, rotation=45, ha="right")
    ax.set_yticklabels(label_names)
    if k <= 30:  # numbers stop being readable beyond that
        threshold = m.max() / 2 if m.size else 0
        for i in range(k):
            for j in range(k):
                text = f"{m[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
                ax.text(j, i, text, ha="center", va="center", color="white" if m[i, j] > threshold else "black",
                        fontsize=8)
    fig.tight_layout()
    path = Path(path)
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return path


# ---------------------------------------------------------------------------------------------- tagging


def entity_metrics(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]], *,
                   strict: bool = False) -> dict[str, float]:
    """Entity-level micro precision / recall / F1 (seqeval) and token accuracy from tag sequences.

    An entity counts as found only if its type and exact extent match. The
    default is conlleval's lenient reading (an ``I-X`` after ``O`` starts an
    entity); ``strict`` uses IOB2 rules (such an entity is invalid).
    """
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    _check_lengths(true_tags, pred_tags, "entity metrics")
    for i, (t, p) in enumerate(zip(true_tags, pred_tags, strict=True)):
        if len(t) != len(p):
            raise DataError(f"entity metrics: sentence {i} has {len(t)} gold tags but {len(p)} predicted")
    kwargs = {"mode": "strict", "scheme": IOB2} if strict else {}
    true_tags, pred_tags = [list(t) for t in true_tags], [list(p) for p in pred_tags]
    return {
        "precision": float(precision_score(true_tags, pred_tags, zero_division=0, **kwargs)),
        "recall": float(recall_score(true_tags, pred_tags, zero_division=0, **kwargs)),
        "f1": float(f1_score(true_tags, pred_tags, zero_division=0, **kwargs)),
        "token_accuracy": float(accuracy_score(true_tags, pred_tags)),
    }


# ------------------------------------------------------------------------------------------ translation


def translation_metrics(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]], *,
                        tokenize: str = "13a") -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu, 0-100). ``references``: one string per hypothesis, or a list of
    reference strings per hypothesis. ``tokenize``: sacrebleu's BLEU tokenizer ('13a'; 'zh' for Chinese)."""
    import sacrebleu

    _check_lengths(references, hypotheses, "translation metrics")
    if all(isinstance(r, str) for r in references):
        streams = [list(references)]
    else:
        counts = {len(r) for r in references}
        if len(counts) != 1:
            raise DataError("translation metrics: every hypothesis needs the same number of references")
        streams = [list(s) for s in zip(*references, strict=True)]  # sacrebleu wants one stream per reference
    hyps = list(hypotheses)
    return {"bleu": float(sacrebleu.corpus_bleu(hyps, streams, tokenize=tokenize).score),
            "chrf": float(sacrebleu.corpus_chrf(hyps, streams).score)}


# -------------------------------------------------------------------------------------------------- QA

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lowercase, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str, level: str) -> list[str]:
    norm = normalize_answer(text)
    if level == "char":  # also drop non-ASCII punctuation (，。「」), as Chinese QA scripts (CMRC) do
        return [ch for ch in norm if not ch.isspace() and not unicodedata.category(ch).startswith("P")]
    return norm.split()


def answer_f1(prediction: str, gold: str, level: Literal["word", "char"] = "word") -> float:
    """Token-overlap F1 between two answers after normalization (``char`` level for unsegmented text)."""
    pred, ref = _tokens(prediction, level), _tokens(gold, level)
    if not pred or not ref:
        return float(pred == ref)  # both empty: a correct "no answer"
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def qa_metrics(predictions: Sequence[str], golds: Sequence[Sequence[str]],
               level: Literal["word", "char"] = "word") -> dict[str, float]:
    """SQuAD exact match and F1, each the max over an example's gold answers, averaged over examples."""
    _check_lengths(golds, predictions, "QA metrics")
    em = f1 = 0.0
    for i, (pred, answers) in enumerate(zip(predictions, golds, strict=True)):
        if isinstance(answers, str) or not answers:
            raise DataError(f"QA metrics: example {i} needs a non-empty list of gold answers")
        em += max(float(_tokens(pred, level) == _tokens(a, level)) for a in answers)
        f1 += max(answer_f1(pred, a, level) for a in answers)
    n = len(predictions)
    return {"exact_match": em / n, "f1": f1 / n}
