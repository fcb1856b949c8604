"""Chinese words <-> one tag per character: B/M/E/S segmentation tags and B-/I- word tags (POS).

Chinese is written without spaces, and a Chinese BERT here tokenizes one character at a time, so word
segmentation and part-of-speech tagging become token classification over characters:

    segmentation (BMES)   a word's first character B, its middle ones M, its last E, a one-character word
                          S. The files spell them IOBES with one chunk type ``W`` ("word") so that the
                          CoNLL reader and seqeval read them: B -> ``B-W``, M -> ``I-W``, E -> ``E-W``,
                          S -> ``S-W``. 中共中央/总书记/、 -> B-W I-W I-W E-W  B-W I-W E-W  S-W
    word tags (IOB)       a word's first character ``B-TAG``, the others ``I-TAG`` (TAG: its part of
                          speech). 总书记/n 、/w -> B-n I-n I-n B-w

:func:`word_spans` reads any tag sequence back into words, well-formed or not (a model's predictions
need not be): a word starts at a character tagged B or S, after a character tagged E or S, where the
type changes, and where ``O`` begins or ends. These are seqeval's conlleval chunk rules (its
``start_of_chunk`` / ``end_of_chunk``); ``O`` characters belong to no word. So seqeval's span F1 over
these tags is the word-level F1 of the SIGHAN bakeoff scorer (tests/eval/test_word_segmentation_metrics.py
checks both on every short sequence).
"""

from __future__ import annotations

from collections.abc import Sequence

from fromzero.errors import DataError

WORD = "W"  # the one chunk type of segmentation tags
BMES_TO_TAG = {"b": f"B-{WORD}", "m": f"I-{WORD}", "e": f"E-{WORD}", "s": f"S-{WORD}"}


def segmentation_tags(words: Sequence[str]) -> list[str]:
    """One B/M/E/S tag per character of ``words`` (spelled ``B-W``/``I-W``/``E-W``/``S-W``, see above)."""
    tags = []
    for word in words:
        if not word:
            raise DataError("segmentation tags: an empty word; every word needs at least one character")
        tags += [BMES_TO_TAG["s"]] if len(word) == 1 else (
            [BMES_TO_TAG["b"]] + [BMES_TO_TAG["m"]] * (len(word) - 2) + [BMES_TO_TAG["e"]])
    return tags


def word_tags(words: Sequence[str], types: Sequence[str]) -> list[str]:
    """One IOB tag per character: ``B-TYPE`` on each word's first character, ``I-TYPE`` on the rest."""
    if len(words) != len(types):
        raise DataError(f"word tags: {len(words)} words but {len(types)} types")
    tags = []
    for word, kind in zip(words, types, strict=True):
        if not word:
            raise DataError("word tags: an empty word; every word needs at least one character")
        tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(word) - 1)
    return tags


def _split(tag: str) -> tuple[str, str]:
    """``B-n`` -> (``B``, ``n``); ``O`` -> (``O``, ``""``)."""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def word_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """The words a tag sequence spells, as ``(start, end, type)`` character spans (end exclusive).

    Any sequence is read (see the module docstring); ``O`` characters are in no span.
    """
    spans: list[tuple[int, int, str]] = []
    prev_prefix, prev_kind = "O", ""  # O's type is "": a word after O (or first) starts on the type change
    for i, tag in enumerate(tags):
        prefix, kind = _split(tag)
        if prefix != "O":
            if prefix in ("B", "S") or prev_prefix in ("E", "S") or kind != prev_kind:
                spans.append((i, i + 1, kind))
            else:
                start, _, _ = spans[-1]
                spans[-1] = (start, i + 1, kind)
        prev_prefix, prev_kind = prefix, kind
    return spans


def decode_words(chars: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """Characters and their (predicted) tags -> ``[(word, type)]`` in order; an ``O`` character becomes a
    one-character word of type ``O`` so that no character is lost."""
    if len(chars) != len(tags):
        raise DataError(f"decode words: {len(chars)} characters but {len(tags)} tags")
    words, covered = [], 0
    for start, end, kind in word_spans(tags):
        words += [(chars[i], "O") for i in range(covered, start)]
        words.append(("".join(chars[start:end]), kind))
        covered = end
    words += [(chars[i], "O") for i in range(covered, len(chars))]
    return words
