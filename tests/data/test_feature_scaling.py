"""Feature scaling: hand-computed values, scikit-learn's scalers directly, train-only fitting, JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from fromzero.data.feature_scaling import FeatureScaler, scale_splits
from fromzero.errors import CheckpointError, DataError

TRAIN = [[0.0, 10.0], [5.0, 20.0], [10.0, 30.0]]  # column 0: 0..10, column 1: 10..30
VALID = [[20.0, 10.0], [-5.0, 40.0]]


def test_minmax_by_hand() -> None:
    scaler = FeatureScaler("minmax").fit(TRAIN)
    # (x - min) / (max - min): 20 -> 2.0, -5 -> -0.5; 10 -> 0.0, 40 -> 1.5 (outside [0, 1]: train statistics)
    np.testing.assert_allclose(scaler.transform(VALID), [[2.0, 0.0], [-0.5, 1.5]])
    np.testing.assert_allclose(FeatureScaler("minmax", (-1.0, 1.0)).fit(TRAIN).transform([[5.0, 30.0]]),
                               [[0.0, 1.0]])


def test_standard_by_hand() -> None:
    scaler = FeatureScaler("standard").fit(TRAIN)
    # column 0: mean 5, population std sqrt(50/3); column 1: mean 20, std sqrt(200/3)
    s0, s1 = np.sqrt(50 / 3), np.sqrt(200 / 3)
    np.testing.assert_allclose(scaler.transform(VALID), [[15 / s0, -10 / s1], [-10 / s0, 20 / s1]])


@pytest.mark.parametrize(("method", "reference"), [("minmax", MinMaxScaler), ("standard", StandardScaler)])
def test_matches_scikit_learn_fitted_on_train_only(method: str, reference: type) -> None:
    rng = np.random.default_rng(0)
    splits = {"train": rng.normal(3.0, 2.0, (50, 4)), "validation": rng.normal(0.0, 5.0, (20, 4)),
              "test": rng.normal(1.0, 1.0, (10, 4))}
    splits["train"][:, 3] = 7.0  # a constant column: scaled by 1, not divided by 0
    scaled, scaler = scale_splits(method, splits)
    ref = reference().fit(splits["train"])
    for name, x in splits.items():
        np.testing.assert_allclose(scaled[name], ref.transform(x), rtol=1e-12, atol=1e-12)
    # fitted on all rows instead, the validation split would scale differently
    pooled = reference().fit(np.concatenate(list(splits.values())))
    assert not np.allclose(scaled["validation"], pooled.transform(splits["validation"]))
    np.testing.assert_allclose(scaler.inverse_transform(scaled["test"]), splits["test"], rtol=1e-12)


@pytest.mark.parametrize("method", ["minmax", "standard"])
def test_json_round_trip_scales_identically(method: str, tmp_path: Path) -> None:
    x = np.random.default_rng(1).uniform(-3, 9, (30, 3))
    scaler = FeatureScaler(method).fit(x[:20])
    path = tmp_path / "feature_scaler.json"
    scaler.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["method"] == method and saved["n_features"] == 3
    loaded = FeatureScaler.load(path)
    np.testing.assert_array_equal(loaded.transform(x[20:]), scaler.transform(x[20:]))


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    scaler = FeatureScaler("standard").fit(TRAIN)
    with pytest.raises(DataError, match="test features: 3 features, but the scaler was fitted on 2"):
        scaler.transform([[1.0, 2.0, 3.0]], "test features")
    with pytest.raises(DataError, match="row 1 feature 0 is nan"):
        FeatureScaler("minmax").fit([[1.0], [float("nan")]])
    with pytest.raises(DataError, match="2-D"):
        FeatureScaler("minmax").fit([1.0, 2.0])
    with pytest.raises(DataError, match="unknown scaling method 'robust'"):
        FeatureScaler("robust")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no 'train' split"):
        scale_splits("minmax", {"validation": TRAIN})
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"method": "standard", "n_features": 2, "mean_": [0, 0]}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="s.json: missing var_, scale_"):
        FeatureScaler.load(bad)
