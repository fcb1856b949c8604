"""Cross-validation of image-classification recipes (data.fold, tune/image_cross_validation.py): the k held-out
folds partition the training pool, each class split in proportion, train and held-out disjoint; `fromzero cv`
trains one run per fold and cv.json's mean / std are those of the folds' eval.json."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY_IMAGE_RECIPE
from fromzero.cli import main
from fromzero.data.datasets.image_folds import ImageFoldConfig
from fromzero.data.datasets.image_sources import ImageDataConfig, load_image_data
from fromzero.errors import ConfigError, FromZeroError
from fromzero.tune.cross_validation import CVOptions, cross_validate


def _key(x: torch.Tensor) -> list[bytes]:
    return [bytes(im.flatten().tolist()) for im in x]


def test_folds_partition_the_pool_stratified() -> None:
    plain = load_image_data(ImageDataConfig(source="digits", limit_train=300), 0)
    pool = _key(torch.cat([plain.train.images, plain.validation.images]))
    held, k = [], 3
    for i in range(k):
        cfg = ImageDataConfig(source="digits", limit_train=300, fold=ImageFoldConfig(k=k, index=i, seed=5))
        s = load_image_data(cfg, 0)
        train, test = _key(s.train.images), _key(s.test.images)
        assert s.validation is s.test and not set(train) & set(test)
        assert sorted(train + test) == sorted(pool)
        counts = torch.bincount(s.test.labels, minlength=10)
        total = torch.bincount(torch.cat([plain.train.labels, plain.validation.labels]), minlength=10)
        assert ((counts - total / k).abs() <= 1).all()  # stratified: each class within one image of N_c / k
        held += test
    assert sorted(held) == sorted(pool)  # every image held out exactly once
    recipe_mode = load_image_data(ImageDataConfig(source="digits", limit_train=300,
                                                  fold=ImageFoldConfig(k=k, index=0, validation="recipe")), 0)
    assert len(recipe_mode.validation) == round(0.1 * (300 - len(recipe_mode.test)))


def test_cv_of_an_image_recipe(tmp_path: Path) -> None:
    recipe = tmp_path / "digits.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_IMAGE_RECIPE, "data": {"source": "digits", "limit_train": 200}}))
    out = tmp_path / "cv"
    assert main(["cv", str(recipe), "--folds", "2", "--out", str(out), "--no-progress", "--train.max_steps=2"]) == 0
    summary = json.loads((out / "cv.json").read_text())
    acc = [json.loads((out / f"fold_{i}" / "eval.json").read_text())["test"]["metrics"]["accuracy"] for i in (0, 1)]
    assert summary["metrics"]["accuracy"]["mean"] == pytest.approx(sum(acc) / 2)
    assert summary["metrics"]["accuracy"]["std"] == pytest.approx(statistics.stdev(acc))
    assert [s["heldout"] for s in summary["fold_sizes"]] == [100, 100]
    with pytest.raises(ConfigError, match="plan.json|--folds"):
        cross_validate(recipe, ["--train.max_steps=2"], CVOptions(folds=3, out=str(out), resume=True), show=False)
    with pytest.raises(FromZeroError, match="image_classification"):
        cross_validate(recipe, ["--task=denoising"], CVOptions(folds=2, out=str(tmp_path / "x")), show=False)
