"""Task data readers: each format parsed right, each user mistake named by file and line with a fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fromzero.data.labels import LabelVocab, class_weights
from fromzero.data.task_data import (
    QAExample,
    TaggedSentence,
    TextExample,
    encode_labels,
    encode_multi_labels,
    label_vocab,
    read_conll,
    read_squad,
    read_text_classification,
    read_tsv_pairs,
    regression_targets,
    tag_vocab,
)
from fromzero.data.truncation import TruncationStats, fit_length, fit_pair
from fromzero.errors import DataError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_single_pair_multi_and_numeric_labels(tmp_path) -> None:
    path = write(tmp_path, "d.jsonl", '{"text": "good film", "label": "pos"}\n\n'
                 '{"text": "a", "text_pair": "b", "label": 2}\n'
                 '{"text": "x", "label": ["sports", "news"]}\n')
    rows = read_text_classification(path)
    assert rows == [TextExample("good film", "pos", None, f"{path}:1"), TextExample("a", 2, "b", f"{path}:3"),
                    TextExample("x", ("sports", "news"), None, f"{path}:4")]


def test_csv_and_tsv_with_custom_columns(tmp_path) -> None:
    csv_path = write(tmp_path, "d.csv", 'sentence,y\n"hello, world",1\n\nbye,0\n')
    rows = read_text_classification(csv_path, text_key="sentence", label_key="y")
    assert [(r.text, r.label, r.where) for r in rows] == [("hello, world", "1", f"{csv_path}:2"),
                                                          ("bye", "0", f"{csv_path}:4")]
    tsv_path = write(tmp_path, "d.tsv", "text\ttext_pair\tlabel\nq1\tq2\tdup\n")
    assert read_text_classification(tsv_path)[0] == TextExample("q1", "dup", "q2", f"{tsv_path}:2")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("a.jsonl", '{"text": "ok", "label": "x"}\n{"text": "", "label": "y"}\n', r"a.jsonl:2: empty or non-string 'text'"),
    ("b.jsonl", '{"text": "ok", "label": "x"}\n{"text": "ok"\n', r"b.jsonl:2: malformed JSON"),
    ("c.jsonl", '{"text": "ok"}\n', r"c.jsonl:1: missing key 'label' \(found: text\)"),
    ("d.jsonl", '{"text": "ok", "label": ""}\n', r"d.jsonl:1: empty 'label'"),
    ("e.jsonl", '{"text": "ok", "label": true}\n', r"e.jsonl:1: 'label' must be a string, a number or a list"),
    ("f.jsonl", "\n\n", r"f.jsonl: no examples found"),
    ("g.csv", "text,label\na,b,c\n", r"g.csv:2: more fields than the header's 2"),
    ("h.txt", "x", r"h.txt: unknown format"),
])
def test_classification_errors_name_file_and_line(tmp_path, name: str, content: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_text_classification(write(tmp_path, name, content))


def test_missing_file_and_non_utf8(tmp_path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_text_classification(tmp_path / "none.jsonl")
    bad = tmp_path / "latin.jsonl"
    bad.write_bytes('{"text": "caf\xe9", "label": 1}\n'.encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text"):
        read_text_classification(bad)


def test_conll_sentences_tabs_spaces_docstart(tmp_path) -> None:
    path = write(tmp_path, "ner.txt", "-DOCSTART- O\n\nJohn\tNNP\tB-PER\nlives  O\n\n\n北  B-LOC\n京 I-LOC\n")
    assert read_conll(path) == [TaggedSentence(("John", "lives"), ("B-PER", "O"), f"{path}:3"),
                                TaggedSentence(("北", "京"), ("B-LOC", "I-LOC"), f"{path}:7")]
    with pytest.raises(DataError, match=r"ner2.txt:2: expected 'token<TAB>label'"):
        read_conll(write(tmp_path, "ner2.txt", "a O\nlonely\n"))
    with pytest.raises(DataError, match=r"ner3.txt:1: label 'PER' is not BIO"):
        read_conll(write(tmp_path, "ner3.txt", "a PER\n"))
    assert read_conll(write(tmp_path, "pos.txt", "a DT\n"), check_bio=False)[0].tags == ("DT",)


def squad(context: str, answers: list[dict], **extra) -> dict:
    return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Who?", "answers": answers, **extra}]}]}]}


def test_squad_reads_and_checks_offsets(tmp_path) -> None:
    context = "Ada Lovelace wrote the first program."
    path = write(tmp_path, "qa.json", json.dumps(squad(context, [{"text": "Ada Lovelace", "answer_start": 0}])))
    (ex,) = read_squad(path)
    assert ex == QAExample("q1", "Who?", context, ("Ada Lovelace",), (0,), ex.where)
    assert "data[0].paragraphs[0].qas[0] (id q1)" in ex.where
    bad = write(tmp_path, "bad.json", json.dumps(squad(context, [{"text": "Ada Lovelace", "answer_start": 2}])))
    with pytest.raises(DataError, match=r"bad.json: data\[0\].paragraphs\[0\].qas\[0\] \(id q1\): answers\[0\] "
                                        r"'Ada Lovelace' is not at answer_start=2"):
        read_squad(bad)
    none = write(tmp_path, "none.json", json.dumps(squad(context, [])))
    with pytest.raises(DataError, match="no answers; give at least one or mark"):
        read_squad(none)
    impossible = write(tmp_path, "imp.json", json.dumps(squad(context, [], is_impossible=True)))
    assert read_squad(impossible)[0].answers == ()
    with pytest.raises(DataError, match="expected a top-level object with a 'data' list"):
        read_squad(write(tmp_path, "list.json", "[]"))


def test_tsv_pairs(tmp_path) -> None:
    path = write(tmp_path, "mt.tsv", "hello\thola\n\nthe end\tel fin\textra\n")
    assert [(p.source, p.target) for p in read_tsv_pairs(path)] == [("hello", "hola"), ("the end", "el fin")]
    with pytest.raises(DataError, match=r"mt2.tsv:2: expected 'source<TAB>target', got 1 column"):
        read_tsv_pairs(write(tmp_path, "mt2.tsv", "a\tb\nno tab here\n"))
    with pytest.raises(DataError, match=r"mt3.tsv:1: empty target text"):
        read_tsv_pairs(write(tmp_path, "mt3.tsv", "a\t \n"))


def test_label_vocab_order_and_unknown_label() -> None:
    rows = [TextExample("a", "10", where="f:1"), TextExample("b", "2", where="f:2"), TextExample("c", 2, where="f:3")]
    vocab = label_vocab(rows)
    assert vocab.labels == ["2", "10"]  # numeric order, and 2 == "2"
    assert encode_labels(rows, vocab) == [1, 0, 0]
    with pytest.raises(DataError, match=r"f:9: unknown label 'neutral' \(known: '2', '10'\); fix the row or add"):
        vocab.encode("neutral", "f:9")
    with pytest.raises(DataError, match="repeats"):
        LabelVocab(["a", "a"])
    tags = tag_vocab([TaggedSentence(("x", "y"), ("B-PER", "O")), TaggedSentence(("z",), ("I-PER",))])
    assert tags.labels == ["O", "B-PER", "I-PER"]


def test_multi_label_regression_and_class_weights() -> None:
    rows = [TextExample("a", ("x", "y"), where="f:1"), TextExample("b", "y", where="f:2")]
    vocab = label_vocab(rows)
    assert encode_multi_labels(rows, vocab) == [[1, 1], [0, 1]]
    with pytest.raises(DataError, match="f:1: a list of labels in single-label data"):
        encode_labels(rows, vocab)
    assert regression_targets([TextExample("a", "-1.5"), TextExample("b", 3)]) == [-1.5, 3.0]
    with pytest.raises(DataError, match=r"f:2: label 'y' is not a number"):
        regression_targets(rows[1:])
    # 4 examples, 2 classes, counts 3 and 1: n / (K n_k) = 4/6 and 4/2
    assert class_weights([0, 0, 0, 1], 2) == pytest.approx([2 / 3, 2.0])


def test_truncation_policy() -> None:
    stats = TruncationStats()
    assert fit_length([1, 2, 3], 5, stats=stats) == [1, 2, 3]
    assert fit_length(list(range(8)), 5, stats=stats) == [0, 1, 2, 3, 4]
    assert (stats.seen, stats.truncated, stats.tokens_dropped) == (2, 1, 3)
    assert str(stats) == "truncated 1 of 2 sequences (3 tokens dropped)"
    with pytest.raises(DataError, match=r"f:7: 8 tokens exceed the limit of 5; shorten the text, raise"):
        fit_length(list(range(8)), 5, "error", "f:7")
    # longest first, from the end: (6, 2) -> (3, 2) for 5 tokens
    a, b = fit_pair([1, 2, 3, 4, 5, 6], [7, 8], 5, stats=stats)
    assert (a, b) == ([1, 2, 3], [7, 8]) and stats.tokens_dropped == 6
    assert fit_pair([1, 2, 3], [4, 5, 6], 4) == ([1, 2], [4, 5])
    with pytest.raises(DataError, match="9 tokens exceed the limit of 4"):
        fit_pair([1] * 5, [2] * 4, 4, "error")
