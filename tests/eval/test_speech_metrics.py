"""WER and CER through jiwer against hand-counted edits: one substitution, one insertion, one deletion, a corpus
(errors summed before dividing), and characters (spaces count)."""

from __future__ import annotations

import pytest

from fromzero.errors import DataError
from fromzero.eval.speech_metrics import character_error_rate, speech_scores, word_error_rate

REFERENCE = "the cat sat on the mat"  # 6 words, 22 characters


@pytest.mark.parametrize(("hypothesis", "wer", "edits"), [
    ("the cat sat on the hat", 1 / 6, (1, 0, 0)),        # mat -> hat: one substitution
    ("the cat sat on the big mat", 1 / 6, (0, 0, 1)),    # + big: one insertion
    ("the cat on the mat", 1 / 6, (0, 1, 0)),            # - sat: one deletion
    ("the cat sat on the mat", 0.0, (0, 0, 0)),
    ("a dog stood by a big red rug here", 9 / 6, (6, 0, 3)),  # every word wrong, 3 extra: WER above 1
])
def test_word_error_rate_by_hand(hypothesis: str, wer: float, edits: tuple[int, int, int]) -> None:
    assert word_error_rate(REFERENCE, hypothesis) == pytest.approx(wer)
    scores = speech_scores([REFERENCE], [hypothesis])
    assert (scores["substitutions"], scores["deletions"], scores["insertions"]) == edits
    assert scores["reference_words"] == 6


def test_character_error_rate_by_hand() -> None:
    assert character_error_rate(REFERENCE, "the cat sat on the hat") == pytest.approx(1 / 22)  # m -> h
    assert character_error_rate(REFERENCE, "the cat saton the mat") == pytest.approx(1 / 22)  # a deleted space
    assert character_error_rate(REFERENCE, "the cats sat on the mat") == pytest.approx(1 / 22)  # s inserted


def test_corpus_rate_sums_errors_before_dividing() -> None:
    refs, hyps = ["the cat sat", "hello"], ["the bat sat", "hello"]
    assert word_error_rate(refs, hyps) == pytest.approx(1 / 4)  # not the mean of 1/3 and 0
    assert character_error_rate(refs, hyps) == pytest.approx(1 / 16)


def test_bad_inputs_are_data_errors() -> None:
    with pytest.raises(DataError, match="2 references but 1 transcripts"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(DataError, match="every reference transcript is empty"):
        character_error_rate([""], ["a"])
    with pytest.raises(DataError, match="no utterances"):
        speech_scores([], [])
