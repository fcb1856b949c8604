"""Seeded train / validation / test splits of a named dataset, and writing them as JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fromzero.atomic import write_text
from fromzero.errors import DataError


def seeded_splits(items: list, n_validation: int, n_test: int, seed: int, what: str) -> dict[str, list]:
    """Seeded random train / validation / test split of ``items``, original order kept inside each split.

    The same seed gives the same split; ``what`` names the data in the error when too much is held out.
    """
    if n_validation + n_test >= len(items):
        raise DataError(f"{what}: {n_validation} validation + {n_test} test leave no training items of "
                        f"{len(items)}; hold out fewer")
    order = np.random.default_rng(seed).permutation(len(items))
    test, val, train = np.split(order, [n_test, n_test + n_validation])
    return {name: [items[i] for i in sorted(idx)] for name, idx in
            (("train", train), ("validation", val), ("test", test))}


def write_jsonl_splits(splits: dict[str, list[dict]], out_dir: str | Path) -> dict[str, Path]:
    """Write ``<out_dir>/<split>.jsonl`` (one JSON object per line, UTF-8) for each split; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in splits.items():
        paths[split] = out / f"{split}.jsonl"
        write_text(paths[split], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return paths
