"""Which runner a recipe needs, and every space key checked against that recipe before the first trial.

The recipe's own loader is the reference: each searched key is loaded at each end of its range (and at every
choice or grid value) as an override, so an unknown key, a wrong type or a value the recipe refuses fails
here in one line naming the space file and the key, before anything is trained or written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fromzero.config import load_yaml
from fromzero.errors import ConfigError
from fromzero.runs import recipe_command
from fromzero.tune.space import Space, override


@dataclass(frozen=True)
class RecipeRunner:
    """What runs one trial: ``pretrain``, ``finetune`` or ``train``; ``load`` validates a recipe with overrides."""

    command: str
    load: Callable[[str | Path, list[str]], Any]
    run: Callable[..., Any]


def runner_for(recipe: str | Path) -> RecipeRunner:
    """The runner of a recipe (``runs.recipe_command`` on its content): pretrain, finetune or train (images)."""
    command = recipe_command(load_yaml(recipe))
    if command == "pretrain":
        from fromzero.pretrain.recipe import load_recipe
        from fromzero.pretrain.runner import pretrain

        return RecipeRunner("pretrain", load_recipe, pretrain)
    if command == "finetune":
        from fromzero.finetune.recipe import load_finetune_recipe
        from fromzero.finetune.runner import finetune

        return RecipeRunner("finetune", load_finetune_recipe, finetune)
    if command == "train":
        from fromzero.vision.recipe import load_vision_recipe
        from fromzero.vision.runner import train_vision

        return RecipeRunner("train", load_vision_recipe, train_vision)
    raise ConfigError(f"{recipe}: not a pretrain, finetune or image (train) recipe; `fromzero tune` runs those")


def check_space(space: Space, recipe: str | Path, runner: RecipeRunner, overrides: list[str]) -> Any:
    """Load the recipe with the command's and the space's fixed overrides, then with each searched key at each
    probe value; returns the recipe loaded with the fixed overrides. Errors name the space file and key."""
    base = [*overrides, *space.fixed_overrides()]
    for key in space.fixed:
        _load(runner, recipe, [*overrides, override(key, space.fixed[key])], space.file, key)
    loaded = _load(runner, recipe, base, space.file, None)
    for param in space.params:
        for value in param.probe_values():
            _load(runner, recipe, [*base, override(param.key, value)], space.file, param.key)
    return loaded


def _load(runner: RecipeRunner, recipe: str | Path, overrides: list[str], file: str, key: str | None) -> Any:
    try:
        return runner.load(recipe, overrides)
    except ConfigError as err:
        if key is None:
            raise
        raise ConfigError(f"{file}: {key}: the recipe refuses it: {err}") from None
