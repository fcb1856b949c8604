"""One fold of k-fold cross-validation of an image recipe's training images (``data.fold``; ``fromzero cv``).

    data: {source: digits, fold: {k: 5, index: 2, seed: 0, validation: fold}}

With ``k`` set, the training pool (after ``limit_train``; a source's own validation split is not used) is cut
into k folds by scikit-learn's ``StratifiedKFold(k, shuffle=True, random_state=seed)`` on the class labels;
fold ``index`` becomes the test split and the other k - 1 folds the training pool. Validation (early stopping,
best checkpoint) is the held-out fold too (``validation: fold``: the fold score is then slightly optimistic)
or a hold-out of ``data.validation`` of the remaining pool (``validation: recipe``). The source's own test
split is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from fromzero.config import field, require
from fromzero.data.image_set import ImageSet
from fromzero.errors import ConfigError


@dataclass(frozen=True)
class ImageFoldConfig:
    """Cross-validation fold of the training images (k: null = off; ``fromzero cv`` sets it per fold)."""

    k: int | None = field(None, help="number of folds (null: no cross-validation split)")
    index: int = field(0, help="the fold held out as the test split, 0 <= index < k")
    seed: int = field(0, help="seed of the (stratified) fold assignment")
    validation: Literal["fold", "recipe"] = field("fold", help="fold: validate on the held-out fold; recipe: "
                                                               "hold out data.validation of the other folds")

    def __post_init__(self) -> None:
        require(self.k is None or self.k >= 2, "k", f"must be >= 2, got {self.k}")
        require(self.k is None or 0 <= self.index < self.k, "index", f"must be in [0, {self.k}), got {self.index}")


def fold_split(pool: ImageSet, cfg: ImageFoldConfig, key: str) -> tuple[ImageSet, ImageSet]:
    """(training pool, held-out fold) of ``pool`` for ``cfg`` (``key`` names the option in errors)."""
    from sklearn.model_selection import StratifiedKFold

    if pool.labels is None:
        raise ConfigError(f"{key}: cross-validation folds are stratified by class; these images have no labels")
    labels = pool.labels.numpy()
    present = np.bincount(labels)
    smallest = int(present[present > 0].min()) if len(labels) else 0
    if cfg.k > smallest:
        raise ConfigError(f"{key}.k: {cfg.k} folds, but a class has only {smallest} training images; use "
                          f"k <= {smallest}")
    splitter = StratifiedKFold(n_splits=cfg.k, shuffle=True, random_state=cfg.seed)
    train, held = list(splitter.split(np.zeros(len(labels)), labels))[cfg.index]
    return pool.subset(torch.from_numpy(np.sort(train))), pool.subset(torch.from_numpy(np.sort(held)))
