"""Word/phrase pairs (one source word -> one target string) split by word and written as seq2seq files.

Shared by ``zh-pinyin`` (``zh_pinyin.py``) and ``cedict-zh-en`` (``cedict.py``). Each source word occurs
once (the preparers deduplicate first), so a seeded split of the pairs is a split by word: no word is in
two splits. Written files:

    train.tsv, validation.tsv, test.tsv    source<TAB>target, one pair per line (the seq2seq task reader)
    corpus_src.jsonl, corpus_tgt.jsonl     the *training* split's two sides, one ``{"text": ...}`` document
                                           per word: the text a base run trains its tokenizer on (never the
                                           held-out words)
    stats.json                             what was read, dropped and why, split sizes, held-out words
                                           with a character never seen in training

Why JSONL and not one word per line of a ``.txt``: the pretraining reader takes a whole ``.txt`` file as
one document, and the unigram tokenizer's pre-tokenizer (Metaspace) splits on spaces, not newlines, so
110,000 Chinese headwords joined by newlines would be one 400,000-character "word" (the Hugging Face
unigram trainer crashes on it) and English glosses would yield pieces spanning two lines
(``overflow\nQuanzhou``). One JSONL document per word keeps every word its own text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fromzero.atomic import write_text
from fromzero.data.datasets.splits import seeded_splits
from fromzero.errors import DataError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class WordPair:
    """One source word and its target; ``where`` is the ``file:line`` it came from."""

    source: str
    target: str
    where: str


def split_by_source(pairs: list[WordPair], n_validation: int, n_test: int, seed: int, what: str
                    ) -> dict[str, list[WordPair]]:
    """Seeded train / validation / test split of pairs whose sources are unique (file order kept per split)."""
    seen: dict[str, str] = {}
    for p in pairs:
        if p.source in seen:
            raise DataError(f"{p.where}: {what} word {p.source!r} repeats {seen[p.source]}; deduplicate the "
                            "pairs before splitting them")
        seen[p.source] = p.where
    return seeded_splits(pairs, n_validation, n_test, seed, what)


def unseen_character_counts(splits: dict[str, list[WordPair]]) -> dict[str, int]:
    """Per held-out split: how many source words hold a character that no training source holds."""
    known = {ch for p in splits["train"] for ch in p.source}
    return {f"{split}_words_with_unseen_characters": sum(1 for p in splits[split] if set(p.source) - known)
            for split in SPLITS[1:]}


def _tsv(pairs: list[WordPair]) -> str:
    for p in pairs:
        for side in (p.source, p.target):
            if not side or any(ch in side for ch in "\t\n\r"):
                raise DataError(f"{p.where}: {side!r} is empty or holds a tab or newline; it cannot be one TSV side")
    return "".join(f"{p.source}\t{p.target}\n" for p in pairs)


def length_stats(pairs: list[WordPair]) -> dict[str, int]:
    """Longest source (characters) and target (characters, words): what max_len / max_target_len must hold."""
    return {"max_source_chars": max((len(p.source) for p in pairs), default=0),
            "max_target_chars": max((len(p.target) for p in pairs), default=0),
            "max_target_words": max((len(p.target.split()) for p in pairs), default=0)}


def write_pair_splits(splits: dict[str, list[WordPair]], out_dir: str | Path, info: dict) -> dict[str, Path]:
    """Write the TSV splits, the training-only corpora and stats.json (``info`` + split sizes); returns the
    TSV paths by split."""
    texts = {split: _tsv(splits[split]) for split in SPLITS}  # every check before the first file
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SPLITS:
        paths[split] = out / f"{split}.tsv"
        write_text(paths[split], texts[split])
    for side, name in (("source", "corpus_src.jsonl"), ("target", "corpus_tgt.jsonl")):
        write_text(out / name, "".join(json.dumps({"text": getattr(p, side)}, ensure_ascii=False) + "\n"
                                       for p in splits["train"]))
    all_pairs = [p for split in SPLITS for p in splits[split]]
    stats = {**info, **{f"{split}_pairs": len(splits[split]) for split in SPLITS},
             **unseen_character_counts(splits), **length_stats(all_pairs)}
    write_text(out / "stats.json", json.dumps(stats, indent=1, ensure_ascii=False))
    return paths
