"""What every ``fromzero cv`` shares, text or image recipe: its options, cv.json's name, the fold summary."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

CV_INFO = "cv.json"


@dataclass(frozen=True)
class CVOptions:
    """How the folds are made and where they go."""

    folds: int = 5
    seed: int = 0  # fold assignment; the recipe's own seed still fixes initialisation and data order
    out: str | None = None  # default: runs/cv_<recipe name>
    validation: Literal["fold", "recipe"] = "fold"
    resume: bool = False


def summarize(per_fold: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Mean and sample standard deviation of every metric all folds report (flags ``*_skipped`` left out)."""
    names = [k for k in per_fold[0] if not k.endswith("_skipped") and all(k in m for m in per_fold)]
    out = {}
    for name in names:
        values = [float(m[name]) for m in per_fold]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        out[name] = {"mean": mean, "std": std, "values": values}
    return out
