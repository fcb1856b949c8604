"""Feature scaling for numeric inputs: min-max or standard, fitted on the training split only.

Thin wrappers over scikit-learn's ``MinMaxScaler`` and ``StandardScaler`` that a run can save as JSON
and load back, so validation, test and inference data are scaled with the training statistics:

    minmax     x' = (x - min_train) / (max_train - min_train) * (hi - lo) + lo
    standard   x' = (x - mean_train) / std_train            (population std, ddof 0)

A constant training column has range (or std) 0; scikit-learn scales it by 1 instead of dividing by 0.

    scaler = FeatureScaler("standard").fit(x_train)          # x: (N, F) floats
    scaled = scale_splits("minmax", {"train": x_tr, "validation": x_va, "test": x_te})
    scaler.save(run_dir / "feature_scaler.json"); FeatureScaler.load(...).transform(x_new)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fromzero.atomic import write_text
from fromzero.errors import CheckpointError, DataError

ScalingMethod = Literal["minmax", "standard"]
METHODS: tuple[str, ...] = ("minmax", "standard")
# the fitted attributes of each scikit-learn scaler, saved and restored by name
_STATE = {"minmax": ("min_", "scale_", "data_min_", "data_max_", "data_range_"),
          "standard": ("mean_", "var_", "scale_")}


def _matrix(x: Any, what: str) -> np.ndarray:
    """``x`` as a finite float64 (N, F) array, or a DataError naming ``what``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{what}: expected a non-empty 2-D array (rows, features), got shape {arr.shape}")
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        r, c = bad[0]
        raise DataError(f"{what}: row {r} feature {c} is {arr[r, c]}; fill or drop missing values before scaling")
    return arr


class FeatureScaler:
    """A min-max or standard scaler (scikit-learn's) whose fitted state round-trips through JSON."""

    def __init__(self, method: ScalingMethod = "standard", feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        from sklearn.preprocessing import MinMaxScaler, StandardScaler

        if method not in METHODS:
            raise DataError(f"unknown scaling method {method!r}; use one of {', '.join(METHODS)}")
        lo, hi = (float(v) for v in feature_range)
        if not lo < hi:
            raise DataError(f"feature_range ({lo}, {hi}): the low end must be below the high end")
        self.method, self.feature_range = method, (lo, hi)
        self._sk = MinMaxScaler(feature_range=(lo, hi)) if method == "minmax" else StandardScaler()
        self.fitted = False

    @property
    def n_features(self) -> int:
        return int(self._sk.n_features_in_)

    def fit(self, x_train: Any) -> FeatureScaler:
        """Learn the statistics from the training rows ``(N, F)`` alone; returns self."""
        self._sk.fit(_matrix(x_train, "training features"))
        self.fitted = True
        return self

    def transform(self, x: Any, what: str = "features") -> np.ndarray:
        """Scale ``(N, F)`` rows with the training statistics -> ``(N, F)`` float64."""
        if not self.fitted:
            raise ValueError("FeatureScaler.transform before fit: fit on the training split first")
        arr = _matrix(x, what)
        if arr.shape[1] != self.n_features:
            raise DataError(f"{what}: {arr.shape[1]} features, but the scaler was fitted on {self.n_features}")
        return self._sk.transform(arr)

    def inverse_transform(self, x: Any) -> np.ndarray:
        """Scaled rows back to the original units."""
        return self._sk.inverse_transform(_matrix(x, "scaled features"))

    def to_dict(self) -> dict[str, Any]:
        """The method, range and fitted statistics (lists of floats): what :meth:`from_dict` rebuilds."""
        if not self.fitted:
            raise ValueError("FeatureScaler.to_dict before fit")
        state = {name: getattr(self._sk, name).tolist() for name in _STATE[self.method]}
        return {"method": self.method, "feature_range": list(self.feature_range), "n_features": self.n_features,
                **state}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "feature scaler") -> FeatureScaler:
        """A fitted scaler from :meth:`to_dict`'s output; a CheckpointError naming ``where`` if incomplete."""
        method = data.get("method")
        if method not in METHODS:
            raise CheckpointError(f"{where}: 'method' is {method!r}, not one of {', '.join(METHODS)}")
        missing = [k for k in ("n_features", *_STATE[method]) if k not in data]
        if missing:
            raise CheckpointError(f"{where}: missing {', '.join(missing)}; refit the scaler on the training split")
        scaler = cls(method, tuple(data.get("feature_range", (0.0, 1.0))))
        n = int(data["n_features"])
        for name in _STATE[method]:
            value = np.asarray(data[name], dtype=np.float64)
            if value.shape != (n,):
                raise CheckpointError(f"{where}: '{name}' has shape {value.shape}, expected ({n},)")
            setattr(scaler._sk, name, value)
        scaler._sk.n_features_in_ = n
        scaler._sk.n_samples_seen_ = 0
        scaler.fitted = True
        return scaler

    def save(self, path: str | Path) -> None:
        """Write the fitted state as JSON (atomically)."""
        write_text(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> FeatureScaler:
        """Read a scaler saved by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"{path}: file not found; the run saved no feature scaler") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: not a JSON feature scaler ({err}); refit and save it again") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data, where=str(path))


def scale_splits(method: ScalingMethod, splits: Mapping[str, Any], train: str = "train",
                 feature_range: tuple[float, float] = (0.0, 1.0)) -> tuple[dict[str, np.ndarray], FeatureScaler]:
    """Fit a scaler on ``splits[train]`` only and scale every split with it -> (scaled splits, scaler)."""
    if train not in splits:
        raise DataError(f"no {train!r} split to fit the scaler on (splits: {', '.join(splits)})")
    scaler = FeatureScaler(method, feature_range).fit(splits[train])
    return {name: scaler.transform(x, f"{name} features") for name, x in splits.items()}, scaler
