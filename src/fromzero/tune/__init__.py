"""Hyperparameter search over recipes: ``fromzero tune`` (Optuna studies, resumable, shared by workers)."""

from fromzero.tune.space import Param, Space, load_space
from fromzero.tune.study import TuneOptions, tune

__all__ = ["Param", "Space", "TuneOptions", "load_space", "tune"]
