"""Character tags <-> words, and word-level segmentation P/R/F1 (SIGHAN) through seqeval."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from fromzero.data.word_tags import decode_words, segmentation_tags, word_spans, word_tags
from fromzero.errors import DataError
from fromzero.eval.metrics import entity_metrics
from fromzero.eval.word_segmentation_metrics import jieba_baseline, segmentation_scores


def _naive_sighan(gold: list[list[str]], pred: list[list[str]]) -> tuple[float, float, float]:
    """The SIGHAN definition by hand: words as (sentence, start, end) spans; correct = spans in both."""
    def spans(sentences: list[list[str]]) -> set[tuple[int, int, int]]:
        out = set()
        for i, words in enumerate(sentences):
            pos = 0
            for w in words:
                out.add((i, pos, pos + len(w)))
                pos += len(w)
        return out

    g, p = spans(gold), spans(pred)
    correct = len(g & p)
    precision, recall = correct / len(p), correct / len(g)
    return precision, recall, (2 * precision * recall / (precision + recall) if correct else 0.0)


def test_hand_worked_example() -> None:
    gold = [["中共中央", "总书记", "、", "国家", "主席"]]
    pred = [["中共", "中央", "总书记", "、", "国家", "主", "席"]]
    # tags written out by hand: B/M/E/S as B-W/I-W/E-W/S-W
    assert segmentation_tags(gold[0]) == ["B-W", "I-W", "I-W", "E-W", "B-W", "I-W", "E-W", "S-W", "B-W", "E-W",
                                          "B-W", "E-W"]
    # correct words: 总书记, 、, 国家 -> 3 of 7 predicted, 3 of 5 gold; F1 = 2*3 / (7+5) = 0.5
    scores = segmentation_scores(gold, pred)
    assert scores["precision"] == pytest.approx(3 / 7) and scores["recall"] == pytest.approx(3 / 5)
    assert scores["f1"] == pytest.approx(0.5)
    # character accuracy: gold vs predicted differ at 共 (I, E), 中 (I, B), 主 (B, S), 席 (E, S): 8 of 12 agree
    assert scores["token_accuracy"] == pytest.approx(8 / 12)


def test_seqeval_span_f1_equals_sighan_word_f1_on_random_segmentations() -> None:
    rng = random.Random(0)
    gold, pred = [], []
    for _ in range(50):
        text = "".join(rng.choice("天地人和日月山水") for _ in range(rng.randint(1, 15)))

        def cut(t: str) -> list[str]:
            bounds = sorted(rng.sample(range(1, len(t)), rng.randint(0, len(t) - 1))) if len(t) > 1 else []
            return [t[a:b] for a, b in zip([0, *bounds], [*bounds, len(t)], strict=True)]

        gold.append(cut(text))
        pred.append(cut(text))
    scores = segmentation_scores(gold, pred)
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx(_naive_sighan(gold, pred))
    assert 0.1 < scores["f1"] < 0.9  # a real mix of right and wrong words


def _seqeval_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    return sorted((start, end + 1, kind) for kind, start, end in get_entities(list(tags)))


def test_decoder_reads_every_sequence_as_seqeval_does() -> None:
    """Well-formed or not, every tag sequence decodes to seqeval's chunks: BMES up to 7 characters,
    two-type IOB with O up to 5."""
    for n in range(1, 8):
        for tags in itertools.product(["B-W", "I-W", "E-W", "S-W"], repeat=n):
            assert word_spans(tags) == _seqeval_spans(tags), tags
    for n in range(1, 6):
        for tags in itertools.product(["B-n", "I-n", "B-v", "I-v", "O"], repeat=n):
            assert word_spans(tags) == _seqeval_spans(tags), tags


def test_ill_formed_predictions_decode_to_words() -> None:
    assert decode_words(list("abcd"), ["I-W", "E-W", "S-W", "E-W"]) == [("ab", "W"), ("c", "W"), ("d", "W")]
    assert decode_words(list("abcde"), ["B-n", "I-v", "I-v", "O", "I-n"]) == [
        ("a", "n"), ("bc", "v"), ("d", "O"), ("e", "n")]


def test_pos_tags_round_trip_and_score_word_and_tag() -> None:
    words, types = ["中共中央", "总书记", "、"], ["n", "n", "w"]
    tags = word_tags(words, types)
    assert tags == ["B-n", "I-n", "I-n", "I-n", "B-n", "I-n", "I-n", "B-w"]
    assert decode_words(list("".join(words)), tags) == list(zip(words, types, strict=True))
    wrong = word_tags(["中共中央", "总书记", "、"], ["n", "v", "w"])  # right span, wrong tag: not counted
    assert entity_metrics([tags], [wrong])["f1"] == pytest.approx(2 / 3)


def test_segmentations_must_spell_the_same_text() -> None:
    with pytest.raises(DataError, match="sentence 0 spells '北京', not the gold '南京'"):
        segmentation_scores([["南京"]], [["北", "京"]])
    with pytest.raises(DataError, match="an empty word"):
        segmentation_tags(["北京", ""])


def test_jieba_baseline_on_a_hand_scored_file(tmp_path: Path) -> None:
    pytest.importorskip("jieba")
    gold = ["我", "爱", "北", "京", "天安门"]  # jieba: 我 / 爱 / 北京 / 天安门 -> 3 of 4 right, 3 of 5 found
    path = tmp_path / "test.conll"
    path.write_text("".join(f"{c}\t{t}\n" for c, t in zip("".join(gold), segmentation_tags(gold), strict=True)),
                    encoding="utf-8")
    scores = jieba_baseline(path)
    assert scores["precision"] == pytest.approx(3 / 4) and scores["recall"] == pytest.approx(3 / 5)
    assert scores["sentences"] == 1
