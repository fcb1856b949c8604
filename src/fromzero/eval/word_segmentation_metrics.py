"""Word-level segmentation scores (the SIGHAN bakeoff's precision / recall / F1) and the jieba baseline.

A predicted word is correct when its character span equals a gold word's (same start, same end);
precision = correct / predicted words, recall = correct / gold words, F1 their harmonic mean, counted
over the whole test set (the SIGHAN 2005 ``score`` script). Written as B-W/I-W/E-W/S-W tags
(``data/word_tags.py``) the words are seqeval's chunks, so seqeval's span F1 *is* that word F1: a
fine-tuned ``zh-segmentation`` run's ``f1`` (``entity_metrics``, the fine-tuning metric of every tagging
task) is the SIGHAN word F1, and the jieba baseline below goes through the same seqeval call
(tests/eval/test_word_segmentation_metrics.py checks it against a naive span count and a hand-worked case). On
``peoples-daily-pos`` the same F1 counts a word only when its span and its tag both match (joint
segmentation and tagging F1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fromzero.data.task_data import read_conll
from fromzero.data.text_steps import segment_zh
from fromzero.data.word_tags import segmentation_tags, word_spans
from fromzero.errors import DataError
from fromzero.eval.metrics import entity_metrics


def segmentation_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Word precision / recall / F1 (and B/M/E/S character accuracy) of predicted segmentations, one list
    of words per sentence, against the gold ones; both must spell the same characters."""
    if len(gold) != len(pred):
        raise DataError(f"segmentation scores: {len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if "".join(g) != "".join(p):
            raise DataError(f"segmentation scores: sentence {i} spells {''.join(p)!r}, not the gold "
                            f"{''.join(g)!r}; a segmenter may only insert boundaries")
    return entity_metrics([segmentation_tags(g) for g in gold], [segmentation_tags(p) for p in pred])


def jieba_words(text: str) -> list[str]:
    """jieba's segmentation (accurate mode, the ``segment_zh`` preprocessing step) of a sentence without
    spaces."""
    return segment_zh(text).split()


def jieba_baseline(conll_path: str | Path) -> dict[str, float]:
    """Word P/R/F1 of jieba on a prepared ``zh-segmentation`` (or ``peoples-daily-pos``) CoNLL file: the
    baseline row beside a fine-tuned segmenter. jieba's dictionary follows its own word standard, not the
    People's Daily one, so part of its error is convention, not mistakes."""
    sentences = read_conll(conll_path)
    gold = [["".join(s.tokens[a:b]) for a, b, _ in word_spans(s.tags)] for s in sentences]
    for s, words in zip(sentences, gold, strict=True):
        if "".join(words) != "".join(s.tokens):
            raise DataError(f"{s.where}: a character has tag O; expected a segmentation file (zh-segmentation)")
    scores = segmentation_scores(gold, [jieba_words("".join(s.tokens)) for s in sentences])
    return {"sentences": float(len(sentences)), **scores}
