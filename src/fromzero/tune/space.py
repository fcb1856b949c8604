"""The search-space file: dotted recipe keys (the same as ``--section.key=value`` overrides) mapped to ranges.

::

    optim.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    optim.warmup_steps: {type: int, low: 0, high: 100, step: 20}
    optim.schedule: {type: categorical, choices: [cosine, linear]}
    train.max_steps: 150          # a plain value: fixed for every trial (a short step budget)

A mapping with ``type`` is searched; anything else is a fixed override applied to every trial. The grid
sampler needs a finite set per key: ``choices``, an explicit ``grid: [...]``, or a ``step`` on a range;
random and TPE draw from ``low..high`` (``log``, ``step``), the span of ``grid`` when no range is given.
Every check here names the space file and the key; checks against the recipe are in ``recipe_check.py``.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fromzero.config import load_yaml
from fromzero.errors import ConfigError

KINDS = ("float", "int", "categorical")
_ALLOWED = {"float": {"type", "low", "high", "log", "step", "grid"},
            "int": {"type", "low", "high", "log", "step", "grid"},
            "categorical": {"type", "choices"}}


@dataclass(frozen=True)
class Param:
    """One searched key: its kind and range (``low``/``high``, ``log``, ``step``) or its ``choices``/``grid``."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    grid: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial draws for this key (a fixed param of an enqueued trial is returned as is)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.low == self.high:  # a one-value grid
            return trial.suggest_categorical(self.key, [self.low])
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        """The finite set the grid sampler visits (``choices``, ``grid``, or ``low..high`` by ``step``)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.grid:
            return list(self.grid)
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        values = [self.low + i * self.step for i in range(n)]
        return [int(v) for v in values] if self.kind == "int" else [round(v, 12) for v in values]

    def probe_values(self) -> list[Any]:
        """The values checked against the recipe before the first trial: both ends, every choice/grid value."""
        if self.kind == "categorical":
            return list(self.choices)
        return list(dict.fromkeys([self.low, self.high, *self.grid]))


@dataclass(frozen=True)
class Space:
    """A parsed space file: searched params (in file order) and fixed overrides."""

    file: str
    params: tuple[Param, ...]
    fixed: dict[str, Any]

    def fixed_overrides(self) -> list[str]:
        """The fixed keys as ``--key=value`` overrides."""
        return [override(k, v) for k, v in self.fixed.items()]

    def grid(self, where: str = "--sampler grid") -> list[dict[str, Any]]:
        """Every grid point, in file order (the last key varies fastest)."""
        missing = [p.key for p in self.params if p.kind != "categorical" and not p.grid and p.step is None]
        if missing:
            raise ConfigError(f"{self.file}: {missing[0]}: {where} needs a finite set of values: add `step` to the "
                              "range or give `grid: [...]` values")
        keys = [p.key for p in self.params]
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(p.grid_values()
                                                                                       for p in self.params))]

    def describe(self) -> dict[str, Any]:
        """A JSON-ready copy (stored with the study, so a resumed study can tell the space changed)."""
        return {"params": {p.key: _param_dict(p) for p in self.params}, "fixed": self.fixed}


def override(key: str, value: Any) -> str:
    """``--key=value`` with the value as JSON (which YAML reads back exactly: floats, strings, lists)."""
    return f"--{key}={json.dumps(value)}"


def _param_dict(p: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"type": p.kind}
    if p.kind == "categorical":
        out["choices"] = list(p.choices)
        return out
    out.update({"low": p.low, "high": p.high, "log": p.log, "step": p.step})
    if p.grid:
        out["grid"] = list(p.grid)
    return out


def _number(value: Any, where: str, kind: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (kind == "int" and not float(value).is_integer()):
        raise ConfigError(f"{where}: expected {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    return int(value) if kind == "int" else float(value)


def _parse_grid(spec: dict[str, Any], kind: str, where: str) -> tuple[Any, ...]:
    grid = spec.get("grid")
    if grid is None:
        return ()
    if not isinstance(grid, list) or not grid:
        raise ConfigError(f"{where}.grid: expected a non-empty list of values, got {grid!r}")
    values = tuple(_number(v, f"{where}.grid", kind) for v in grid)
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}.grid: a value is listed twice")
    return values


def _parse_range(key: str, spec: dict[str, Any], kind: str, where: str) -> Param:
    grid = _parse_grid(spec, kind, where)
    if grid and "low" not in spec and "high" not in spec:  # a grid alone: random/TPE draw within its span
        if len(grid) < 2:
            return Param(key, kind, grid[0], grid[0], grid=grid)
        spec = {**spec, "low": min(grid), "high": max(grid)}
    for name in ("low", "high"):
        if name not in spec:
            raise ConfigError(f"{where}: `{name}` is missing (a {kind} range needs low and high, or grid: [...])")
    low, high = _number(spec["low"], f"{where}.low", kind), _number(spec["high"], f"{where}.high", kind)
    if not low < high:
        raise ConfigError(f"{where}: empty range (low {low} must be below high {high})")
    outside = [v for v in grid if not low <= v <= high]
    if outside:
        raise ConfigError(f"{where}.grid: {outside[0]} is outside low..high ({low}..{high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, f"{where}.step", kind)
        if step <= 0 or step > high - low:
            raise ConfigError(f"{where}.step: must be in (0, high - low], got {step}")
        if log:
            raise ConfigError(f"{where}: give either log: true or a step, not both (Optuna cannot combine them)")
        if grid:
            raise ConfigError(f"{where}: give either a step or grid: [...] (the grid sampler's values), not both")
    return Param(key, kind, low, high, log, step, grid=grid)


def parse_param(key: str, spec: dict[str, Any], file: str) -> Param:
    """One searched key's mapping -> :class:`Param`; bad types, empty ranges and unknown fields are errors."""
    where = f"{file}: {key}"
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"{where}.type: {kind!r} is not one of {', '.join(KINDS)}")
    unknown = sorted(set(spec) - _ALLOWED[kind])
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown field for type {kind} (valid: "
                          f"{', '.join(sorted(_ALLOWED[kind]))})")
    if kind != "categorical":
        return _parse_range(key, spec, kind, where)
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}.choices: expected a non-empty list, got {choices!r}")
    bad = [c for c in choices if not (c is None or isinstance(c, str | int | float | bool))]
    if bad:
        raise ConfigError(f"{where}.choices: {bad[0]!r} is not a plain value (str, number, bool or null)")
    if len({json.dumps(c) for c in choices}) != len(choices):
        raise ConfigError(f"{where}.choices: a value is listed twice")
    return Param(key, kind, choices=tuple(choices))


def load_space(path: str | Path) -> Space:
    """Read and check a space file (see the module docstring); keys are checked against a recipe later."""
    file = str(path)
    data = load_yaml(path)
    params: list[Param] = []
    fixed: dict[str, Any] = {}
    for key, spec in data.items():
        if not isinstance(key, str) or not key or not all(key.split(".")):
            raise ConfigError(f"{file}: {key!r}: a key is a dotted recipe key such as optim.lr")
        if isinstance(spec, dict) and "type" in spec:
            params.append(parse_param(key, spec, file))
        elif isinstance(spec, dict):
            raise ConfigError(f"{file}: {key}: a searched key needs `type: float | int | categorical` (a plain "
                              "value fixes the key for every trial)")
        else:
            fixed[key] = spec
    if not params:
        raise ConfigError(f"{file}: no searched key (give at least one `key: {{type: ..., ...}}`)")
    return Space(file, tuple(params), fixed)
