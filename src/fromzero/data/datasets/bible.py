"""Bible en -> es translation pairs from two SWORD modules, aligned verse by verse.

``fromzero prepare-task bible-en-es OUT_DIR`` reads the World English Bible
(Debian ``sword-text-web``, module ``engWEB2015eb``) and the Reina-Valera
1909 (Debian ``sword-text-sparv``, module ``spaRV1909eb``) with PyPI
``pysword`` and writes

    train.tsv, validation.tsv, test.tsv    English<TAB>Spanish, one verse per line
    corpus_en.txt, corpus_es.txt           the training split's verses, one per line (pretraining text)
    stats.json                             how many verses were read, aligned, skipped and why

Alignment is by key (OSIS book name, chapter, verse), never by position:
the two modules use different versifications (WEB: NRSVA, with the
deuterocanonical books; RV 1909: KJV), so a verse present in one and not in
the other is skipped and counted, and a verse empty after cleaning in
either language is dropped and counted. Cleaning: text after the book's closing
milestone is cut (the WEB appends its glossary to Revelation 22:21); every ``<note ...>...</note>``
(footnotes, cross references) becomes a space *before* the other markup is
stripped (else the note's text would stay in the verse), then every tag
goes, entities are unescaped and whitespace is collapsed.

Splits: one whole book is held out as the test set (default **Ruth**: a
self-contained narrative with no parallel passage elsewhere in the Bible, so
the test verses are not near-copies of training verses, as Mark's are of
Matthew's and Luke's; and 85 verses decode in seconds on a CPU). From the
other books a seeded random sample of verses is the validation set; the rest
is training. The pretraining corpora hold the training split only, so
neither the held-out book nor the validation verses are seen in pretraining.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fromzero.atomic import write_text
from fromzero.errors import DataError
from fromzero.progress import progress

SWORD_DIR = "/usr/share/sword"
EN_MODULE, ES_MODULE = "engWEB2015eb", "spaRV1909eb"
INSTALL = "apt-get install sword-text-web sword-text-sparv && pip install pysword==0.2.8"
TEST_BOOK = "Ruth"
N_VALIDATION = 500

VerseKey = tuple[str, int, int]  # (OSIS book name, chapter, verse)

_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.DOTALL)
_NOTE_SELF_CLOSED = re.compile(r"<note\b[^>]*/>")
_TAG = re.compile(r"<[^>]*>")
# A book's closing milestone: the last verse of a module may carry what follows the book (the WEB appends
# its glossary, 17k characters, to Revelation 22:21), which is not verse text.
_BOOK_END = re.compile(r"<div\b(?=[^>]*\beID=)(?=[^>]*\btype=\"book\")[^>]*/>")


def clean_verse(raw: str) -> str:
    """OSIS verse markup -> plain text: the verse ends at its book's closing milestone, notes become a space,
    other tags vanish, entities are unescaped, whitespace collapses."""
    text = _BOOK_END.split(raw, maxsplit=1)[0]
    text = _NOTE.sub(" ", text)
    text = _NOTE_SELF_CLOSED.sub(" ", text)
    text = _TAG.sub("", text)
    return " ".join(html.unescape(text).split())


def sword_verses(module: str, sword_dir: str | Path = SWORD_DIR, books: Iterable[str] | None = None
                 ) -> Iterator[tuple[VerseKey, str]]:
    """Every verse of a SWORD Bible module (of ``books``, OSIS names, if given) as ((book, chapter, verse),
    raw OSIS text), in canonical order."""
    try:
        from pysword.modules import SwordModules
    except ImportError:
        raise DataError(f"bible-en-es needs the 'pysword' package; install the data with `{INSTALL}`") from None
    if not (Path(sword_dir) / "mods.d").is_dir():
        raise DataError(f"{sword_dir}: no SWORD modules folder; install them with `{INSTALL}`")
    modules = SwordModules(str(sword_dir))
    if module not in modules.parse_modules():
        raise DataError(f"{sword_dir}: SWORD module {module} is not installed; install it with `{INSTALL}`")
    bible = modules.get_bible_from_module(module)
    wanted = set(books) if books is not None else None
    chosen = [book for testament in bible.get_structure().get_books().values() for book in testament
              if wanted is None or book.osis_name in wanted]
    for book in progress(chosen, desc=module, unit="book", leave=False, enabled=len(chosen) >= 10):
        for chapter, n_verses in enumerate(book.chapter_lengths, 1):
            numbers = list(range(1, n_verses + 1))
            texts = bible.get_iter(books=[book.osis_name], chapters=[chapter], verses=numbers, clean=False)
            for number, raw in zip(numbers, texts, strict=True):
                yield (book.osis_name, chapter, number), raw


@dataclass
class AlignStats:
    """What alignment kept and dropped (written to stats.json)."""

    source_verses: int = 0
    target_verses: int = 0
    aligned: int = 0
    only_in_source: int = 0
    only_in_target: int = 0
    empty_after_cleaning: int = 0
    books: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VersePair:
    """One aligned verse: its key, the source (English) and target (Spanish) texts."""

    key: VerseKey
    source: str
    target: str


def align_verses(source: Iterable[tuple[VerseKey, str]], target: Iterable[tuple[VerseKey, str]]
                 ) -> tuple[list[VersePair], AlignStats]:
    """Pair verses by (book, chapter, verse) key, cleaning both sides; source order is kept.

    A key in only one module is skipped (counted in ``only_in_*``); a pair whose
    either side is empty after :func:`clean_verse` is dropped (``empty_after_cleaning``).
    A key repeated within one module is an error (the reader would be broken).
    """
    def as_dict(verses: Iterable[tuple[VerseKey, str]], what: str) -> dict[VerseKey, str]:
        out: dict[VerseKey, str] = {}
        for key, raw in verses:
            if key in out:
                raise DataError(f"{what} module repeats verse {key[0]} {key[1]}:{key[2]}; the module is corrupt")
            out[key] = raw
        return out

    src, tgt = as_dict(source, "source"), as_dict(target, "target")
    stats = AlignStats(source_verses=len(src), target_verses=len(tgt))
    stats.only_in_source = sum(1 for k in src if k not in tgt)
    stats.only_in_target = sum(1 for k in tgt if k not in src)
    pairs, books = [], {}
    for key, raw in src.items():
        if key not in tgt:
            continue
        s, t = clean_verse(raw), clean_verse(tgt[key])
        if not s or not t:
            stats.empty_after_cleaning += 1
            continue
        pairs.append(VersePair(key, s, t))
        books.setdefault(key[0], None)
    stats.aligned, stats.books = len(pairs), list(books)
    return pairs, stats


def split_pairs(pairs: list[VersePair], test_book: str = TEST_BOOK, n_validation: int = N_VALIDATION,
                seed: int = 0) -> dict[str, list[VersePair]]:
    """``test``: every verse of ``test_book``; ``validation``: a seeded sample of the rest; ``train``: the rest.

    Each split keeps canonical order. The same pairs and seed give the same split.
    """
    test = [p for p in pairs if p.key[0] == test_book]
    if not test:
        books = sorted({p.key[0] for p in pairs})
        raise DataError(f"bible-en-es: no aligned verse in the test book {test_book!r}; choose one of "
                        f"{', '.join(books[:12])}{', ...' if len(books) > 12 else ''}")
    rest = [p for p in pairs if p.key[0] != test_book]
    if n_validation >= len(rest):
        raise DataError(f"bible-en-es: {n_validation} validation verses leave no training verses of {len(rest)}")
    chosen = set(np.random.default_rng(seed).choice(len(rest), size=n_validation, replace=False).tolist())
    return {"train": [p for i, p in enumerate(rest) if i not in chosen],
            "validation": [p for i, p in enumerate(rest) if i in chosen], "test": test}


def _tsv(pairs: list[VersePair]) -> str:
    return "".join(f"{p.source}\t{p.target}\n" for p in pairs)  # cleaning collapsed tabs and newlines


def write_bible_splits(splits: dict[str, list[VersePair]], stats: AlignStats, out_dir: str | Path,
                       test_book: str) -> dict[str, Path]:
    """Write the TSV splits, the training-only pretraining corpora and stats.json; returns the TSV paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in splits.items():
        paths[split] = out / f"{split}.tsv"
        write_text(paths[split], _tsv(rows))
    write_text(out / "corpus_en.txt", "".join(p.source + "\n" for p in splits["train"]))
    write_text(out / "corpus_es.txt", "".join(p.target + "\n" for p in splits["train"]))
    info = {"source": f"{EN_MODULE} (World English Bible)", "target": f"{ES_MODULE} (Reina-Valera 1909)",
            "test_book": test_book, **{f"{s}_pairs": len(r) for s, r in splits.items()}, **vars(stats)}
    write_text(out / "stats.json", json.dumps(info, indent=1))
    return paths


def prepare_bible_en_es(out_dir: str | Path, seed: int = 0, *, test_book: str = TEST_BOOK,
                        sword_dir: str | Path = SWORD_DIR) -> dict[str, Path]:
    """Read both modules (or fail with the install command), align, split and write ``out_dir``."""
    pairs, stats = align_verses(sword_verses(EN_MODULE, sword_dir), sword_verses(ES_MODULE, sword_dir))
    splits = split_pairs(pairs, test_book, N_VALIDATION, seed)
    return write_bible_splits(splits, stats, out_dir, test_book)
