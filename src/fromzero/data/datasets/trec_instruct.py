"""TREC-instruct: an instruction / response dataset derived by templates from TREC question classification.

Not a human-written instruction set: every row is generated from one TREC
question (``datasets.trec.trec_splits``, the same seeded train /
validation / test split as ``prepare-task trec``, so no test question is
seen in training) and its gold labels, by three instruction templates. The
user message is the question, a newline, then the instruction (instruction
last: a conversation too long for the model's context is cut from the left,
which then drops the start of the question, never the instruction):

    group          instruction               response (derived from)
    answer_type    What kind of answer?      coarse class as a phrase (COARSE_PHRASES): "a number", "a person", ...
    question_word  Which question word?      the first of what/which/who/whom/whose/where/when/why/how among
                                             the question's words (lowercased), or "none" (e.g. "Name a ...")
    fine_type      What exact answer type?   fine class as a phrase (FINE_PHRASES): "a date", "a city", ...

Each question gives one row per group (3 x 4,381 train, 3 x 500 validation,
3 x 500 test); rows are shuffled within a split (seeded) so that the first
rows of validation mix all groups. A row is
``{"prompt", "response", "group", "question", "label", "fine"}``; the SFT
reader uses prompt / response / group and ignores the rest.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fromzero.data.datasets.splits import write_jsonl_splits
from fromzero.data.datasets.trec import trec_splits
from fromzero.data.tokenizers import Tokenizer

INSTRUCTIONS = {
    "answer_type": "What kind of answer?",
    "question_word": "Which question word?",
    "fine_type": "What exact answer type?",
}
COARSE_PHRASES = {"ABBR": "an abbreviation", "DESC": "a description", "ENTY": "an entity", "HUM": "a person",
                  "LOC": "a location", "NUM": "a number"}
FINE_PHRASES = {
    "ABBR:abb": "an abbreviation", "ABBR:exp": "an expansion",
    "DESC:def": "a definition", "DESC:desc": "a description", "DESC:manner": "a manner", "DESC:reason": "a reason",
    "ENTY:animal": "an animal", "ENTY:body": "a body part", "ENTY:color": "a color",
    "ENTY:cremat": "a creative work", "ENTY:currency": "a currency", "ENTY:dismed": "a disease",
    "ENTY:event": "an event", "ENTY:food": "a food", "ENTY:instru": "an instrument", "ENTY:lang": "a language",
    "ENTY:letter": "a letter", "ENTY:other": "an entity", "ENTY:plant": "a plant", "ENTY:product": "a product",
    "ENTY:religion": "a religion", "ENTY:sport": "a sport", "ENTY:substance": "a substance",
    "ENTY:symbol": "a symbol", "ENTY:techmeth": "a technique", "ENTY:termeq": "a term", "ENTY:veh": "a vehicle",
    "ENTY:word": "a word",
    "HUM:desc": "a person's description", "HUM:gr": "a group", "HUM:ind": "a person", "HUM:title": "a title",
    "LOC:city": "a city", "LOC:country": "a country", "LOC:mount": "a mountain", "LOC:other": "a location",
    "LOC:state": "a state",
    "NUM:code": "a code", "NUM:count": "a count", "NUM:date": "a date", "NUM:dist": "a distance",
    "NUM:money": "a price", "NUM:ord": "a rank", "NUM:other": "a number", "NUM:perc": "a percentage",
    "NUM:period": "a duration", "NUM:speed": "a speed", "NUM:temp": "a temperature", "NUM:volsize": "a size",
    "NUM:weight": "a weight",
}
WH_WORDS = ("what", "which", "who", "whom", "whose", "where", "when", "why", "how")
_WORD = re.compile(r"[a-z]+")


def question_word(question: str) -> str:
    """The first wh-word among the question's words (lowercased), or "none"."""
    return next((w for w in _WORD.findall(question.lower()) if w in WH_WORDS), "none")


def instruction_rows(row: dict[str, str]) -> list[dict[str, str]]:
    """The three instruction rows of one TREC row ``{"text", "label", "fine"}`` (see the module docstring)."""
    question = row["text"]
    responses = {"answer_type": COARSE_PHRASES[row["label"]], "question_word": question_word(question),
                 "fine_type": FINE_PHRASES[row["fine"]]}
    return [{"prompt": f"{question}\n{INSTRUCTIONS[g]}", "response": responses[g], "group": g,
             "question": question, "label": row["label"], "fine": row["fine"]} for g in INSTRUCTIONS]


def trec_instruct_splits(seed: int = 0, n_validation: int = 500, n_test: int = 500,
                         path: Path | None = None) -> dict[str, list[dict[str, str]]]:
    """TREC's seeded split (``trec_splits``), each question expanded into its instruction rows, shuffled per split."""
    out = {}
    for split, rows in trec_splits(seed, n_validation, n_test, path=path).items():
        expanded = [r for row in rows for r in instruction_rows(row)]
        order = np.random.default_rng([seed, len(out)]).permutation(len(expanded))
        out[split] = [expanded[i] for i in order]
    return out


def prepare_trec_instruct(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """TREC-instruct as ``{train,validation,test}.jsonl`` for ``task.kind: sft``."""
    return write_jsonl_splits(trec_instruct_splits(seed), out_dir)  # read (or fail) before creating anything


def unknown_characters(texts: Iterable[str], tokenizer: Tokenizer) -> Counter:
    """Characters of ``texts`` that a character-level tokenizer maps to its unknown token, with counts."""
    if tokenizer.unk_id is None:
        return Counter()
    counts = Counter(ch for text in texts for ch in text)
    return Counter({ch: n for ch, n in counts.items() if tokenizer.encode(ch) == [tokenizer.unk_id]})
