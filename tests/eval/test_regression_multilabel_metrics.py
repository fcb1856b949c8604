"""Regression metrics and multi-label ROC-AUC against hand-computed values and naive implementations, and
how score_outputs records an undefined value (a flag, never a silent number)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fromzero.errors import DataError
from fromzero.eval.metrics import multilabel_roc_auc, regression_metrics
from fromzero.eval.task_metrics import score_outputs
from fromzero.eval.task_outputs import TaskOutputs


def _ranks(x: list[float]) -> list[float]:
    """Average ranks (1-based), ties sharing their mean rank, as Spearman's rho uses."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def test_regression_metrics_by_hand() -> None:
    y = [1.0, 2.0, 3.0, 4.0, 2.0]
    p = [1.5, 2.0, 2.5, 5.0, 1.0]
    m = regression_metrics(y, p)
    errors = [0.5, 0.0, -0.5, 1.0, -1.0]
    assert m["mse"] == pytest.approx(sum(e * e for e in errors) / 5)  # 2.5 / 5 = 0.5
    assert m["mae"] == pytest.approx(sum(abs(e) for e in errors) / 5)  # 3.0 / 5 = 0.6
    mean = sum(y) / 5  # 2.4; SST = 1.96 + 0.16 + 0.36 + 2.56 + 0.16 = 5.2
    assert m["r2"] == pytest.approx(1 - 2.5 / sum((v - mean) ** 2 for v in y))
    assert m["pearson"] == pytest.approx(_pearson(y, p))
    assert m["spearman"] == pytest.approx(_pearson(_ranks(y), _ranks(p)))  # ties in y: average ranks
    assert "correlation_skipped" not in m and all(type(v) is float for v in m.values())


def test_constant_predictions_skip_the_correlations() -> None:
    m = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])  # the predict-the-mean baseline
    assert m["correlation_skipped"] == 1.0 and "pearson" not in m and "spearman" not in m
    assert m["mse"] == pytest.approx(2 / 3) and m["r2"] == pytest.approx(0.0)
    with pytest.raises(DataError, match="no examples"):
        regression_metrics([], [])


def _naive_auc(labels: list[int], scores: list[float]) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


Y = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0], [1, 0, 1]])
S = np.array([[0.9, 0.2, 0.6], [0.3, 0.8, 0.7], [0.6, 0.4, 0.2], [0.2, 0.1, 0.3], [0.4, 0.5, 0.6]])


def test_multilabel_roc_auc_against_a_naive_pairwise_count() -> None:
    per_label = [_naive_auc(Y[:, k].tolist(), S[:, k].tolist()) for k in range(3)]
    assert multilabel_roc_auc(Y, S, "macro") == pytest.approx(sum(per_label) / 3)
    assert multilabel_roc_auc(Y, S, "micro") == pytest.approx(_naive_auc(Y.ravel().tolist(), S.ravel().tolist()))


def test_constant_label_column_skips_macro_auc_with_a_flag() -> None:
    y = Y.copy()
    y[:, 1] = 0  # label 1 never occurs: its AUC (and so the macro mean) is undefined
    with pytest.raises(DataError, match=r"column\(s\) \[1\] are constant"):
        multilabel_roc_auc(y, S, "macro")
    out = TaskOutputs("sequence_classification", "multi_label", y.tolist(), (S > 0.5).astype(int).tolist(),
                      S.tolist(), ["a", "b", "c"])
    m = score_outputs(out)
    assert m["roc_auc_macro_skipped"] == 1.0 and "roc_auc_macro" not in m
    assert m["roc_auc_micro"] == pytest.approx(_naive_auc(y.ravel().tolist(), S.ravel().tolist()))
    assert m["subset_accuracy"] == pytest.approx(np.mean([(r == q).all() for r, q in zip(y, S > 0.5, strict=True)]))
    assert {"f1_macro", "f1_micro"} <= set(m)


def test_score_outputs_regression_uses_the_regression_metrics() -> None:
    out = TaskOutputs("sequence_classification", "regression", [1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.4, 3.6])
    assert score_outputs(out) == regression_metrics(out.y_true, out.y_pred)
    assert set(score_outputs(out)) == {"mse", "mae", "r2", "pearson", "spearman"}
