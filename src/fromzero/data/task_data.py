"""Labelled task data: readers for the common file formats, and the labels of what they read.

Formats (UTF-8; a leading byte-order mark is accepted):

    JSONL        one object per line: {"text": ..., "text_pair": ... (optional), "label": ...}
                 label: a string or number, a list of strings for multi-label, a number for regression
    CSV / TSV    a header row naming the same columns (``.tsv``: tab-separated)
    CoNLL        one token per line, ``token<TAB or spaces>...<label>`` (label: last column),
                 a blank line between sentences; ``-DOCSTART-`` lines are skipped
    SQuAD JSON   {"data": [{"paragraphs": [{"context": ..., "qas": [{"id", "question",
                 "answers": [{"text", "answer_start"}], "is_impossible" (optional)}]}]}]}
    TSV pairs    ``source<TAB>target`` per line (translation); blank lines are skipped

Every error is a :class:`DataError` naming the file and line (or JSON path)
and the fix. Each example keeps ``where`` ("file:line") so later errors,
e.g. an unknown label, point back into the file.

Label sets are :class:`fromzero.data.labels.LabelVocab`; the truncation
policy for over-long sequences is :mod:`fromzero.data.truncation`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fromzero.data.labels import Label, LabelVocab
from fromzero.errors import DataError

_BIO = re.compile(r"^(O|[BIES]-.+)$")


@dataclass(frozen=True)
class TextExample:
    """One sequence (or sentence pair) with its raw label, as read from ``where`` (file:line)."""

    text: str
    label: Label
    text_pair: str | None = None
    where: str = ""


@dataclass(frozen=True)
class TaggedSentence:
    """Tokens with one tag each (CoNLL); ``where`` is the file:line of the first token."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    where: str = ""


@dataclass(frozen=True)
class QAExample:
    """A SQuAD question; ``answer_starts`` are character offsets into ``context`` (empty: unanswerable)."""

    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]
    where: str = ""


@dataclass(frozen=True)
class TextPair:
    """A source/target pair (translation, seq2seq)."""

    source: str
    target: str
    where: str = ""


def _open_text(path: str | Path) -> tuple[Path, str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return path, path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); re-save the file as UTF-8") from None


def _nonempty(examples: list, path: Path, what: str) -> list:
    if not examples:
        raise DataError(f"{path}: no {what} found; the file is empty or holds only blank lines")
    return examples


# --------------------------------------------------------------------------------------- classification


def _label_value(value: Any, where: str, key: str) -> Label:
    if isinstance(value, bool) or value is None or isinstance(value, dict):
        raise DataError(f"{where}: '{key}' must be a string, a number or a list of strings, got {value!r}")
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise DataError(f"{where}: multi-label '{key}' must be a non-empty list of non-empty strings, "
                            f"got {value!r}")
        return tuple(v.strip() for v in value)
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where}: empty '{key}'; give every row a label or drop the row")
        return value.strip()
    return value


def _text_example(row: dict[str, Any], where: str, text_key: str, pair_key: str, label_key: str) -> TextExample:
    for key in (text_key, label_key):
        if key not in row:
            raise DataError(f"{where}: missing key '{key}' (found: {', '.join(map(str, row)) or 'none'}); "
                            "rename the column or pass text_key= / label_key= to the reader")
    text = row[text_key]
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: empty or non-string '{text_key}' ({text!r}); remove the row or fill in the text")
    pair = row.get(pair_key)
    if pair is not None and not isinstance(pair, str):
        raise DataError(f"{where}: '{pair_key}' must be a string, got {pair!r}")
    pair = pair if pair and pair.strip() else None
    return TextExample(text, _label_value(row[label_key], where, label_key), pair, where)


def iter_jsonl_objects(path: Path, content: str | None = None) -> Iterator[tuple[dict[str, Any], str]]:
    """``(object, "file:line")`` for each non-blank line of a JSONL file; a line that is not one JSON object
    is a DataError naming it. ``content``: the already-read text (else the file is read as UTF-8)."""
    if content is None:
        path, content = _open_text(path)
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: malformed JSON ({err.msg} at column {err.colno}); one object per "
                            "line") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
        yield row, where


def read_text_classification(path: str | Path, *, text_key: str = "text", pair_key: str = "text_pair",
                             label_key: str = "label", fmt: Literal["jsonl", "csv", "tsv"] | None = None
                             ) -> list[TextExample]:
    """Read ``(text[, text_pair], label)`` rows from JSONL, CSV or TSV (``fmt`` None: from the suffix)."""
    path, content = _open_text(path)
    fmt = fmt or {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown format; use a .jsonl, .csv or .tsv file or pass fmt=")
    examples = []
    if fmt == "jsonl":
        for row, where in iter_jsonl_objects(path, content):
            examples.append(_text_example(row, where, text_key, pair_key, label_key))
    else:
        reader = csv.DictReader(content.splitlines(), delimiter="\t" if fmt == "tsv" else ",")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:
                raise DataError(f"{where}: more fields than the header's {len(reader.fieldnames or [])}; quote "
                                "fields that contain the delimiter")
            if not any((v or "").strip() for v in row.values()):
                continue
            examples.append(_text_example({k: v for k, v in row.items() if v is not None}, where, text_key,
                                          pair_key, label_key))
    return _nonempty(examples, path, "examples")


def read_field(path: str | Path, key: str, fmt: Literal["jsonl", "csv", "tsv"] | None = None) -> dict[str, str]:
    """One extra field (e.g. a group for per-group metrics) of every row of a JSONL / CSV / TSV task file, as
    ``{"file:line": value}`` (``where`` as :func:`read_text_classification` gives it); a row without a
    non-empty scalar ``key`` is a DataError naming its line."""
    path, content = _open_text(path)
    fmt = fmt or {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}.get(path.suffix.lower())
    if fmt == "jsonl":
        rows = list(iter_jsonl_objects(path, content))
    elif fmt in ("csv", "tsv"):
        reader = csv.DictReader(content.splitlines(), delimiter="\t" if fmt == "tsv" else ",")
        rows = [(row, f"{path}:{reader.line_num}") for row in reader if any((v or "").strip() for v in row.values()
                                                                            if isinstance(v, str))]
    else:
        raise DataError(f"{path}: unknown format; use a .jsonl, .csv or .tsv file")
    values = {}
    for row, where in rows:
        value = row.get(key)
        if value is None or isinstance(value, (list, dict)) or not str(value).strip():
            raise DataError(f"{where}: missing field '{key}' (found: {', '.join(map(str, row)) or 'none'}); give "
                            f"every row a '{key}' value, or pass the field the file has")
        values[where] = str(value).strip()
    return values


# ----------------------------------------------------------------------------------------------- CoNLL


def read_conll(path: str | Path, *, token_col: int = 0, tag_col: int = -1, check_bio: bool = True
               ) -> list[TaggedSentence]:
    """Read CoNLL-style tagged sentences; columns split on tabs if the line has one, else on whitespace.

    ``check_bio`` requires every tag to be ``O`` or ``B-X``/``I-X`` (also ``E-X``/``S-X`` for IOBES).
    """
    path, content = _open_text(path)
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def flush() -> None:
        if tokens:
            sentences.append(TaggedSentence(tuple(tokens), tuple(tags), f"{path}:{start}"))
            tokens.clear()
            tags.clear()

    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            flush()
            continue
        cols = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
        if cols[0].startswith("-DOCSTART-"):
            flush()
            continue
        if len(cols) < 2:
            raise DataError(f"{path}:{n}: expected 'token<TAB>label', got {line.strip()!r}; separate the token "
                            "and its label with a tab or spaces")
        try:
            token, tag = cols[token_col].strip(), cols[tag_col].strip()
        except IndexError:
            raise DataError(f"{path}:{n}: no column {token_col} or {tag_col} in {len(cols)} columns") from None
        if not token or not tag:
            raise DataError(f"{path}:{n}: empty token or label in {line.strip()!r}")
        if check_bio and not _BIO.match(tag):
            raise DataError(f"{path}:{n}: label {tag!r} is not BIO (O, B-TYPE, I-TYPE); fix the tag or pass "
                            "check_bio=False")
        if not tokens:
            start = n
        tokens.append(token)
        tags.append(tag)
    flush()
    return _nonempty(sentences, path, "sentences")


# ----------------------------------------------------------------------------------------------- SQuAD


def _qa_example(qa: Any, context: str, where: str) -> QAExample:
    if not isinstance(qa, dict):
        raise DataError(f"{where}: expected an object with id, question and answers")
    qid = str(qa.get("id", where))
    where = f"{where} (id {qid})"
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: empty question; remove it or fill in the text")
    answers, starts = [], []
    for j, ans in enumerate(qa.get("answers") or []):
        text, start = (ans or {}).get("text"), (ans or {}).get("answer_start")
        if not isinstance(text, str) or not text or not isinstance(start, int) or isinstance(start, bool):
            raise DataError(f"{where}: answers[{j}] needs a non-empty 'text' and an integer 'answer_start'")
        if context[start:start + len(text)] != text:
            raise DataError(f"{where}: answers[{j}] {text!r} is not at answer_start={start} of the context "
                            f"(found {context[start:start + len(text)]!r}); answer_start must be its character "
                            "offset")
        answers.append(text)
        starts.append(start)
    if not answers and not qa.get("is_impossible", False):
        raise DataError(f"{where}: no answers; give at least one or mark the question \"is_impossible\": true")
    return QAExample(qid, question, context, tuple(answers), tuple(starts), where)


def read_squad(path: str | Path) -> list[QAExample]:
    """Read SQuAD v1.1/v2.0-style JSON; each answer must occur at its ``answer_start`` in the context."""
    path, content = _open_text(path)
    try:
        data = json.loads(content)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: malformed JSON ({err.msg}); check the file is SQuAD JSON") from None
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise DataError(f"{path}: expected a top-level object with a 'data' list (SQuAD format)")
    examples = []
    for a, article in enumerate(articles):
        for p, para in enumerate((article or {}).get("paragraphs") or []):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            context = (para or {}).get("context")
            if not isinstance(context, str) or not context.strip():
                raise DataError(f"{where}: empty context; remove the paragraph or fill in the text")
            for q, qa in enumerate(para.get("qas") or []):
                examples.append(_qa_example(qa, context, f"{where}.qas[{q}]"))
    return _nonempty(examples, path, "questions")


# ------------------------------------------------------------------------------------------- TSV pairs


def read_tsv_pairs(path: str | Path, *, source_col: int = 0, target_col: int = 1) -> list[TextPair]:
    """Read ``source<TAB>target`` lines (extra columns allowed and ignored)."""
    path, content = _open_text(path)
    pairs = []
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) <= max(source_col, target_col):
            raise DataError(f"{path}:{n}: expected 'source<TAB>target', got {len(cols)} column(s); separate the "
                            "texts with one tab")
        source, target = cols[source_col].strip(), cols[target_col].strip()
        if not source or not target:
            raise DataError(f"{path}:{n}: empty {'source' if not source else 'target'} text; remove the line or "
                            "fill it in")
        pairs.append(TextPair(source, target, f"{path}:{n}"))
    return _nonempty(pairs, path, "pairs")


# ------------------------------------------------------------------------------- labels of examples


def label_vocab(examples: Sequence[TextExample]) -> LabelVocab:
    """The label set of classification examples (multi-label tuples flattened)."""
    return LabelVocab.build(e.label for e in examples)


def tag_vocab(sentences: Sequence[TaggedSentence]) -> LabelVocab:
    """The tag set of tagged sentences, ``O`` first (its conventional id 0)."""
    return LabelVocab.build((t for s in sentences for t in s.tags), first=("O",))


def encode_labels(examples: Sequence[TextExample], vocab: LabelVocab) -> list[int]:
    """Single-label class ids; a multi-label row is an error."""
    out = []
    for e in examples:
        if isinstance(e.label, tuple):
            raise DataError(f"{e.where}: a list of labels in single-label data; use multi-label or one label")
        out.append(vocab.encode(e.label, e.where))
    return out


def encode_multi_labels(examples: Sequence[TextExample], vocab: LabelVocab) -> list[list[int]]:
    """Multi-hot rows (N, K); a single label counts as a one-element list."""
    rows = []
    for e in examples:
        row = [0] * len(vocab)
        for label in e.label if isinstance(e.label, tuple) else (e.label,):
            row[vocab.encode(label, e.where)] = 1
        rows.append(row)
    return rows


def regression_targets(examples: Sequence[TextExample]) -> list[float]:
    """Numeric labels as floats; a non-numeric label is an error naming its line."""
    out = []
    for e in examples:
        try:
            if isinstance(e.label, tuple):
                raise ValueError
            out.append(float(e.label))
        except ValueError:
            raise DataError(f"{e.where}: label {e.label!r} is not a number; regression needs numeric labels") from None
    return out
