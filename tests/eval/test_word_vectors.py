"""Nearest neighbours and 3CosAdd analogy accuracy against hand-computed answers and a naive loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fromzero.errors import DataError
from fromzero.eval.word_vectors import (
    Analogy,
    analogy_accuracy,
    answer_analogies,
    nearest_neighbours,
    read_analogies,
)

R = 1 / math.sqrt(2)
# man, woman, king = (man + royal)/sqrt2, queen = (woman + royal)/sqrt2, apple = royal
VECTORS = torch.tensor([[1.0, 0, 0], [0, 1, 0], [R, 0, R], [0, R, R], [0, 0, 1]])
VOCAB = {"man": 0, "woman": 1, "king": 2, "queen": 3, "apple": 4}


def test_analogy_accuracy_by_hand() -> None:
    """man:woman::king:? target = (-0.29, 1, 0.71): queen scores 1.21, apple 0.71 -> queen (right);
    woman:man::queen:? -> king by symmetry (right); man:king::woman:? target = (-0.29, 1, 0.71) -> queen,
    but the file says apple (wrong); a question with 'pear' is skipped. Accuracy 2/3."""
    questions = [Analogy("gender", "man", "woman", "king", "queen"), Analogy("gender", "woman", "man", "queen", "king"),
                 Analogy("royal", "man", "king", "woman", "apple"), Analogy("royal", "man", "king", "pear", "apple")]
    result = analogy_accuracy(VECTORS, VOCAB, questions)
    assert (result.correct, result.answered, result.skipped) == (2, 3, 1)
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.sections == {"gender": (2, 2), "royal": (0, 1)}


def test_the_question_words_are_never_the_answer() -> None:
    """apple:apple::king:? aims at king itself; with a, b, c excluded the best other word is man (0.71)."""
    assert answer_analogies(VECTORS, torch.tensor([[4, 4, 2]])).tolist() == [0]


def test_nearest_neighbours_against_a_loop() -> None:
    torch.manual_seed(0)
    vectors = torch.randn(12, 5)

    def cos(i: int, j: int) -> float:
        return float(vectors[i] @ vectors[j] / (vectors[i].norm() * vectors[j].norm()))

    expected = sorted((j for j in range(12) if j not in (3, 7)), key=lambda j: -cos(3, j))[:4]
    got = nearest_neighbours(vectors, 3, k=4, exclude=[7])
    assert [i for i, _ in got] == expected
    assert [s for _, s in got] == pytest.approx([cos(3, j) for j in expected], rel=1e-5)
    assert len(nearest_neighbours(vectors, 3, k=50)) == 11


def test_read_google_format(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text(": family\nMan Woman King Queen\n\n: pronouns\nhe she his her\n", encoding="utf-8")
    assert read_analogies(path) == [Analogy("family", "man", "woman", "king", "queen"),
                                    Analogy("pronouns", "he", "she", "his", "her")]
    assert read_analogies(path, lowercase=False)[0].a == "Man"
    path.write_text(": family\nman woman king\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q.txt:2: expected four words"):
        read_analogies(path)
    with pytest.raises(DataError, match="not found"):
        read_analogies(tmp_path / "missing.txt")
