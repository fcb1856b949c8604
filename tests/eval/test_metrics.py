"""Metric wrappers against values computed by hand (or by a naive implementation) on small cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fromzero.errors import DataError
from fromzero.eval.metrics import (
    answer_f1,
    classification_metrics,
    confusion,
    entity_metrics,
    multilabel_metrics,
    normalize_answer,
    plot_confusion_matrix,
    qa_metrics,
    roc_auc,
    translation_metrics,
)

# 10 examples, 2 classes. Class 1: TP 3, FN 1, FP 2. Class 0: TP 4, FN 2, FP 1.
Y_TRUE = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
Y_PRED = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]


def test_binary_confusion_and_scores_by_hand() -> None:
    assert confusion(Y_TRUE, Y_PRED, labels=[0, 1]) == [[4, 2], [1, 3]]
    p1, r1 = 3 / 5, 3 / 4
    p0, r0 = 4 / 5, 4 / 6
    f1, f0 = 2 * p1 * r1 / (p1 + r1), 2 * p0 * r0 / (p0 + r0)
    m = classification_metrics(Y_TRUE, Y_PRED)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision_macro"] == pytest.approx((p0 + p1) / 2)
    assert m["recall_macro"] == pytest.approx((r0 + r1) / 2)
    assert m["f1_macro"] == pytest.approx((f0 + f1) / 2)
    for key in ("precision_micro", "recall_micro", "f1_micro"):  # single-label: micro = accuracy
        assert m[key] == pytest.approx(0.7)
    assert all(type(v) is float for v in m.values())


def test_class_never_predicted_counts_zero_in_macro() -> None:
    m = classification_metrics([0, 1, 2, 2], [0, 1, 1, 1], labels=[0, 1, 2])
    # class 0: P=R=1; class 1: P=1/3, R=1; class 2: never predicted -> P=R=F1=0
    assert m["precision_macro"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert m["recall_macro"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["f1_macro"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_multilabel_by_hand() -> None:
    true = [[1, 0, 1], [0, 1, 0]]
    pred = [[1, 0, 0], [0, 1, 0]]
    m = multilabel_metrics(true, pred)
    assert m["subset_accuracy"] == 0.5
    assert m["precision_micro"] == 1.0 and m["recall_micro"] == pytest.approx(2 / 3)
    assert m["f1_macro"] == pytest.approx((1 + 1 + 0) / 3)


def naive_auc(positive: list[float], negative: list[float]) -> float:
    """P(score of a random positive > score of a random negative), ties counting half."""
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positive, negative))
    return wins / (len(positive) * len(negative))


def test_roc_auc_binary_and_one_vs_rest() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == {"roc_auc": 0.75}  # 3 of 4 pairs ranked right
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.2, 0.2, 0.6], [0.1, 0.5, 0.4], [0.5, 0.3, 0.2],
                      [0.2, 0.3, 0.5]])
    y = [0, 1, 2, 1, 2, 0]
    expected = np.mean([naive_auc([probs[i, k] for i in range(6) if y[i] == k],
                                  [probs[i, k] for i in range(6) if y[i] != k]) for k in range(3)])
    assert roc_auc(y, probs)["roc_auc_ovr"] == pytest.approx(expected)
    with pytest.raises(DataError, match=r"class\(es\) \[2\] never occur"):
        roc_auc([0, 1, 1], probs[:3])


def test_confusion_plot_is_a_png(tmp_path) -> None:
    import matplotlib.image

    path = plot_confusion_matrix(confusion(Y_TRUE, Y_PRED, [0, 1]), ["neg", "pos"], tmp_path / "plots" / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).shape[:2] == (480, 480)  # 4 x 4 inches at 120 dpi
    plot_confusion_matrix([[4, 2], [1, 3]], ["neg", "pos"], tmp_path / "norm.png", normalize=True)
    with pytest.raises(ValueError, match="does not match 3 label names"):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "x.png")


def test_entity_f1_by_hand() -> None:
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    # gold entities PER(0-1), LOC(3), ORG; predicted PER(0-1), ORG(3), ORG: 2 of 3 right each way
    m = entity_metrics(true, pred)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["token_accuracy"] == pytest.approx(5 / 6)
    # a wrong extent is a miss: PER(0-1) vs PER(0)
    assert entity_metrics([["B-PER", "I-PER"]], [["B-PER", "O"]])["f1"] == 0.0


def test_entity_lenient_vs_strict() -> None:
    true, pred = [["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]
    assert entity_metrics(true, pred)["f1"] == 1.0  # conlleval: I- after O starts an entity
    assert entity_metrics(true, pred, strict=True)["f1"] == 0.0  # IOB2: not a valid entity
    with pytest.raises(DataError, match="sentence 0 has 3 gold tags but 2 predicted"):
        entity_metrics(true, [["O", "O"]])


def test_bleu_by_hand_and_chrf_bounds() -> None:
    # n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths, so no brevity penalty
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    m = translation_metrics(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert m["bleu"] == pytest.approx(expected, rel=1e-6)
    assert 0 < m["chrf"] < 100
    assert translation_metrics(["a small test"], ["a small test"])["bleu"] == 0.0  # no 4-grams: unsmoothed 0
    same = translation_metrics(["this is a small test"], ["this is a small test"])
    assert same == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}
    assert translation_metrics(["xyz"], ["abc"])["chrf"] == 0.0
    # two references per hypothesis: the matching one makes it perfect
    two = translation_metrics(["this is a small test"], [["no match here at all", "this is a small test"]])
    assert two["bleu"] == pytest.approx(100)
    with pytest.raises(DataError, match="1 references but 2 predictions"):
        translation_metrics(["a", "b"], ["a"])


def test_squad_normalization_and_scores_by_hand() -> None:
    assert normalize_answer("The  Cat,  sat!") == "cat sat"
    assert normalize_answer("an apple") == "apple"
    # "the big cat" -> [big, cat] vs "a cat" -> [cat]: P = 1/2, R = 1, F1 = 2/3
    assert answer_f1("the big cat", "a cat") == pytest.approx(2 / 3)
    m = qa_metrics(["the big cat", "Paris"], [["a cat", "dog"], ["paris.", "France"]])
    assert m == {"exact_match": pytest.approx(0.5), "f1": pytest.approx((2 / 3 + 1) / 2)}
    # character level for Chinese: 北京大学 vs 北京 -> P = 2/4, R = 2/2; punctuation dropped
    assert qa_metrics(["北京大学"], [["北京。"]], level="char") == {"exact_match": 0.0, "f1": pytest.approx(2 / 3)}
    assert answer_f1("", "") == 1.0 and answer_f1("x", "") == 0.0
    with pytest.raises(DataError, match="example 0 needs a non-empty list"):
        qa_metrics(["x"], [[]])


def test_chinese_answers_are_scored_per_character() -> None:
    from fromzero.eval.task_metrics import answer_level, score_outputs
    from fromzero.eval.task_outputs import TaskOutputs

    golds = [["江泽民"], ["北京", "苏州寒山寺"]]
    assert answer_level(golds) == "char" and answer_level([["the cat"]]) == "word"
    out = score_outputs(TaskOutputs("span_qa", "single_label", golds, ["江泽", "寒山寺"]))
    # hand: 江泽 vs 江泽民: P 2/2, R 2/3 -> F1 0.8; 寒山寺 vs 苏州寒山寺: P 1, R 3/5 -> 0.75 (best gold)
    assert out["exact_match"] == 0.0 and abs(out["f1"] - (0.8 + 0.75) / 2) < 1e-12
