"""EDA: easy data augmentation for text classification (Wei & Zou 2019, https://arxiv.org/abs/1901.11196).

Four word-level operations on a whitespace-split sentence of l words, each with strength alpha:

    sr  synonym replacement   n = max(1, int(alpha l)) distinct non-stop words, every occurrence of each
                              replaced by one random synonym
    ri  random insertion      n times: a random synonym of a random non-stop word inserted at a random place
    rs  random swap           n times: two random positions swapped
    rd  random deletion       each word deleted with probability alpha; if none is left, one random word is kept

Each example yields ``n_aug`` new ones, the operations taken in turn (sr, ri, rs, rd, sr, ...); labels and
every other field are kept. Synonyms come from the caller (WordNet, EDA's own source, needs a download):
a synonyms file (:func:`read_synonyms`) or a word2vec run's nearest neighbours
(``eval/vector_synonyms.py``). Stop words (scikit-learn's English list) are never replaced or used as
insertion anchors, as in EDA. Every draw comes from a generator seeded with (seed, row index), so the
output is deterministic and a row's augmentations do not depend on the rows before it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.data.task_data import iter_jsonl_objects
from fromzero.errors import ConfigError, DataError

OPS = ("sr", "ri", "rs", "rd")
SYNONYM_OPS = ("sr", "ri")
Synonyms = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class EDAConfig:
    """Strength, augmentations per example, and which operations (taken in turn)."""

    alpha: float = 0.1
    n_aug: int = 4
    ops: tuple[str, ...] = OPS

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ConfigError(f"--alpha: must be in (0, 1], got {self.alpha}")
        if self.n_aug < 1:
            raise ConfigError(f"--n-aug: must be >= 1, got {self.n_aug}")
        bad = [op for op in self.ops if op not in OPS]
        if bad or not self.ops:
            raise ConfigError(f"--ops: unknown operation {bad[0] if bad else 'none'!r}; choose from {', '.join(OPS)}")


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def _synonyms_of(word: str, synonyms: Synonyms) -> list[str]:
    found = synonyms.get(word) or synonyms.get(word.lower()) or ()
    return [s for s in found if s != word]


def _candidates(words: Sequence[str], synonyms: Synonyms) -> list[str]:
    stop = _stop_words()
    seen: dict[str, None] = {}
    for w in words:
        if w.lower() not in stop and _synonyms_of(w, synonyms):
            seen.setdefault(w)
    return list(seen)


def synonym_replacement(words: Sequence[str], n: int, synonyms: Synonyms, rng: random.Random) -> list[str]:
    """Up to ``n`` distinct replaceable words, every occurrence swapped for one random synonym each."""
    out = list(words)
    candidates = _candidates(words, synonyms)
    rng.shuffle(candidates)
    for word in candidates[:n]:
        new = rng.choice(_synonyms_of(word, synonyms))
        out = [new if w == word else w for w in out]
    return out


def random_insertion(words: Sequence[str], n: int, synonyms: Synonyms, rng: random.Random) -> list[str]:
    """``n`` times: a synonym of a random replaceable word inserted at a random position (0..len)."""
    out = list(words)
    for _ in range(n):
        candidates = _candidates(out, synonyms)
        if not candidates:
            break
        new = rng.choice(_synonyms_of(rng.choice(candidates), synonyms))
        out.insert(rng.randint(0, len(out)), new)
    return out


def random_swap(words: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """``n`` swaps of two distinct random positions (none for a one-word sentence)."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: Sequence[str], p: float, rng: random.Random) -> list[str]:
    """Each word dropped with probability ``p``; an all-deleted sentence keeps one random word."""
    if len(words) <= 1:
        return list(words)
    kept = [w for w in words if rng.random() >= p]
    return kept or [rng.choice(list(words))]


def eda(text: str, cfg: EDAConfig, synonyms: Synonyms, rng: random.Random) -> list[tuple[str, str]]:
    """``cfg.n_aug`` (operation, augmented text) pairs of ``text``, the operations taken in turn."""
    words = text.split()
    n = max(1, int(cfg.alpha * len(words)))
    out = []
    for i in range(cfg.n_aug):
        op = cfg.ops[i % len(cfg.ops)]
        if op == "sr":
            new = synonym_replacement(words, n, synonyms, rng)
        elif op == "ri":
            new = random_insertion(words, n, synonyms, rng)
        elif op == "rs":
            new = random_swap(words, n, rng)
        else:
            new = random_deletion(words, cfg.alpha, rng)
        out.append((op, " ".join(new)))
    return out


def augment_rows(rows: Sequence[dict[str, Any]], cfg: EDAConfig, synonyms: Synonyms | None = None, seed: int = 0,
                 text_field: str = "text") -> list[dict[str, Any]]:
    """Each row, then its ``n_aug`` augmentations (every other field kept, ``augment`` naming the operation)."""
    if synonyms is None and any(op in SYNONYM_OPS for op in cfg.ops):
        raise ConfigError("--ops: sr and ri need synonyms; give --synonyms FILE or --word-vectors RUN, or use "
                          "--ops rs,rd")
    out = []
    for index, row in enumerate(rows):
        out.append(row)
        rng = random.Random(f"eda:{seed}:{index}")  # a str seed is hashed deterministically (SHA-512)
        for op, text in eda(row[text_field], cfg, synonyms or {}, rng):
            out.append({**row, text_field: text, "augment": op})
    return out


def read_synonyms(path: str | Path) -> dict[str, list[str]]:
    """A synonyms file: one ``word synonym synonym ...`` line each (whitespace-separated, ``#`` comments)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: synonyms file not found; give lines of 'word synonym synonym ...'")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); a synonyms file is text") from None
    out: dict[str, list[str]] = {}
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if len(words) == 1:
            raise DataError(f"{path}:{number}: {words[0]!r} has no synonyms; write 'word synonym ...' or drop the line")
        if words:
            out.setdefault(words[0], []).extend(w for w in words[1:] if w not in out[words[0]])
    if not out:
        raise DataError(f"{path}: no synonyms found; the file is empty or holds only comments")
    return out


def read_text_rows(source: str | Path, text_field: str = "text") -> list[dict[str, Any]]:
    """The rows of a JSONL task file, each with a non-empty ``text_field`` (else a one-line error naming the line)."""
    rows = []
    for row, where in iter_jsonl_objects(Path(source)):
        text = row.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: missing or empty '{text_field}'; fill it in or drop the row")
        rows.append(row)
    if not rows:
        raise DataError(f"{source}: no rows found; the file is empty or holds only blank lines")
    return rows


def augment_file(source: str | Path, target: str | Path, cfg: EDAConfig, synonyms: Synonyms | None = None,
                 seed: int = 0, text_field: str = "text") -> dict[str, int]:
    """Write ``source`` (JSONL) with every row's augmentations after it into ``target`` (atomically)."""
    target = Path(target)
    if target.exists():
        raise ConfigError(f"{target}: output exists; choose a new path or remove it")
    rows = read_text_rows(source, text_field)
    out = augment_rows(rows, cfg, synonyms, seed, text_field)
    write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    return {"rows": len(rows), "written": len(out)}
