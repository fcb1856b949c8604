"""The search-space file: parsing, the grid's points, and every check against the recipe before any trial."""

from __future__ import annotations

from pathlib import Path

import pytest

from fromzero.errors import ConfigError
from fromzero.tune.recipe_check import check_space, runner_for
from fromzero.tune.space import load_space
from tune.tiny_study import write_yaml


def _space(tmp_path: Path, data: dict) -> Path:
    return write_yaml(tmp_path / "space.yaml", data)


def test_parses_params_fixed_keys_and_grid(tmp_path: Path) -> None:
    space = load_space(_space(tmp_path, {
        "optim.lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True, "grid": [1e-3, 2e-3]},
        "optim.warmup_steps": {"type": "int", "low": 0, "high": 10, "step": 5},
        "optim.schedule": {"type": "categorical", "choices": ["cosine", "linear"]},
        "train.max_steps": 6}))
    assert [p.key for p in space.params] == ["optim.lr", "optim.warmup_steps", "optim.schedule"]
    assert space.fixed == {"train.max_steps": 6}
    assert space.fixed_overrides() == ["--train.max_steps=6"]
    lr = space.params[0]
    assert (lr.low, lr.high, lr.log) == (1e-4, 3e-3, True)  # the range random/TPE draw from
    grid = space.grid()
    # hand-enumerated: 2 lr x 3 warmup (0, 5, 10) x 2 schedules, last key fastest
    assert len(grid) == 12
    assert grid[0] == {"optim.lr": 1e-3, "optim.warmup_steps": 0, "optim.schedule": "cosine"}
    assert grid[1] == {"optim.lr": 1e-3, "optim.warmup_steps": 0, "optim.schedule": "linear"}
    assert grid[-1] == {"optim.lr": 2e-3, "optim.warmup_steps": 10, "optim.schedule": "linear"}
    assert {type(p["optim.warmup_steps"]) for p in grid} == {int}


def test_float_step_grid_values(tmp_path: Path) -> None:
    space = load_space(_space(tmp_path, {"optim.weight_decay": {"type": "float", "low": 0.0, "high": 0.3,
                                                                "step": 0.1}}))
    assert [p["optim.weight_decay"] for p in space.grid()] == pytest.approx([0.0, 0.1, 0.2, 0.3])


@pytest.mark.parametrize(("entry", "expected"), [
    ({"type": "float", "low": 1e-3, "high": 1e-3}, "empty range"),
    ({"type": "float", "low": 2e-3, "high": 1e-3}, "empty range"),
    ({"type": "float", "low": 0.0, "high": 1e-3, "log": True}, "log: true needs low > 0"),
    ({"type": "int", "low": 0.5, "high": 4}, "optim.lr.low: expected an integer"),
    ({"type": "float", "low": "small", "high": 1.0}, "optim.lr.low: expected a number"),
    ({"type": "float", "high": 1.0}, "`low` is missing"),
    ({"type": "double", "low": 0, "high": 1}, "optim.lr.type: 'double' is not one of"),
    ({"type": "categorical", "choices": []}, "optim.lr.choices: expected a non-empty list"),
    ({"type": "categorical", "choices": [1, 1]}, "listed twice"),
    ({"type": "float", "low": 0.0, "high": 1.0, "stepp": 0.1}, "optim.lr.stepp: unknown field"),
    ({"type": "float", "low": 0.0, "high": 1.0, "grid": [2.0]}, "2.0 is outside low..high"),
    ({"type": "float", "low": 0.0, "high": 1.0, "step": 2.0}, "optim.lr.step: must be in"),
    ({"low": 0.0, "high": 1.0}, "needs `type: float | int | categorical`"),
])
def test_bad_entries_name_the_file_and_key(tmp_path: Path, entry: dict, expected: str) -> None:
    path = _space(tmp_path, {"optim.lr": entry})
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(path) in str(err.value) and "optim.lr" in str(err.value) and expected in str(err.value)
    assert "\n" not in str(err.value)


def test_grid_needs_a_finite_set(tmp_path: Path) -> None:
    space = load_space(_space(tmp_path, {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-3}}))
    with pytest.raises(ConfigError, match=r"space.yaml: optim.lr: --sampler grid needs a finite set"):
        space.grid()


def test_no_searched_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no searched key"):
        load_space(_space(tmp_path, {"train.max_steps": 4}))


@pytest.mark.parametrize(("key", "entry", "expected"), [
    ("optim.lrr", {"type": "float", "low": 1e-4, "high": 1e-3}, "did you mean 'optim.lr'"),
    ("model.n_embdd", {"type": "int", "low": 8, "high": 16}, "n_embdd"),
    ("train.max_steps", {"type": "float", "low": 2.0, "high": 4.0}, "expected int"),  # the recipe's type
    ("optim.lr", {"type": "float", "low": -1.0, "high": 1e-3}, "optim.lr"),  # the recipe refuses lr < 0
    ("optim.schedule", {"type": "categorical", "choices": ["cosine", "cosinus"]}, "cosinus"),
])
def test_keys_checked_against_the_recipe(tmp_path: Path, recipe: Path, key: str, entry: dict,
                                          expected: str) -> None:
    path = _space(tmp_path, {key: entry})
    with pytest.raises(ConfigError) as err:
        check_space(load_space(path), recipe, runner_for(recipe), [])
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: the recipe refuses it") and expected in message, message
    assert "\n" not in message


def test_fixed_key_checked_and_good_space_passes(tmp_path: Path, recipe: Path) -> None:
    bad = _space(tmp_path, {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-3}, "train.max_stepz": 3})
    with pytest.raises(ConfigError, match=r"space.yaml: train.max_stepz: the recipe refuses it"):
        check_space(load_space(bad), recipe, runner_for(recipe), [])
    good = _space(tmp_path, {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-3}, "train.max_steps": 3})
    loaded = check_space(load_space(good), recipe, runner_for(recipe), ["--train.batch_size=4"])
    assert loaded.train.max_steps == 3 and loaded.train.batch_size == 4  # fixed keys and overrides applied
