"""One registry, one factory: every model in fromzero is built by name.

A *family* is a config dataclass plus the module it builds (``gpt`` ->
``GPTConfig``, ``GPT``). A *preset* is a named, complete config of a family
(``gpt-char-small``). ``create_model(name, **overrides)`` accepts either.
Family files register themselves explicitly; ``fromzero.models`` imports them.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from fromzero.config import from_dict, to_dict
from fromzero.errors import ConfigError


@dataclass(frozen=True)
class Family:
    name: str
    config_cls: type
    model_cls: Callable[[Any], nn.Module]


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, Callable[[], Any]] = {}


def register_family(name: str, config_cls: type, model_cls: Callable[[Any], nn.Module]) -> None:
    """Register a model family: configs of ``config_cls`` build ``model_cls(config)``."""
    if name in _FAMILIES:
        raise ValueError(f"model family {name!r} registered twice")
    _FAMILIES[name] = Family(name, config_cls, model_cls)


def register_model(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Decorator registering a preset: a function returning a complete family config."""

    def decorate(fn: Callable[[], Any]) -> Callable[[], Any]:
        if name in _PRESETS:
            raise ValueError(f"model preset {name!r} registered twice")
        _PRESETS[name] = fn
        return fn

    return decorate


def list_models() -> list[str]:
    """Names of all registered presets."""
    return sorted(_PRESETS)


def list_families() -> list[str]:
    return sorted(_FAMILIES)


def family_of(config: Any) -> Family:
    """The family whose config class ``config`` is an instance of."""
    for fam in _FAMILIES.values():
        if isinstance(config, fam.config_cls):
            return fam
    raise ValueError(f"{type(config).__name__} is not a registered model config")


def context_length(config: Any) -> int:
    """The longest input a model config accepts (GPT: ``block_size``; BERT, T5: ``max_positions``)."""
    length = getattr(config, "block_size", None) or getattr(config, "max_positions", None)
    if length is None:  # e.g. word2vec: no token windows, so no perplexity, generation or serving
        raise ConfigError(f"model family {family_of(config).name!r} reads no token sequences (no block_size or "
                          "max_positions); this command works on sequence models only")
    return length


def model_config(name: str, overrides: dict[str, Any] | None = None, *, file: str | None = None,
                 prefix: str = "model") -> Any:
    """Resolve a preset or family name plus overrides into a validated config.

    Errors name ``file`` and the dotted key (``model.n_embd``) and suggest the
    closest registered name for typos.
    """
    overrides = dict(overrides or {})
    if name in _PRESETS:
        base = _PRESETS[name]()
        cls, values = type(base), {**to_dict(base), **overrides}
    elif name in _FAMILIES:
        cls, values = _FAMILIES[name].config_cls, overrides
    else:
        known = list(_PRESETS) + list(_FAMILIES)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        where = f"{file}: {prefix}.name" if file else f"{prefix}.name"
        raise ConfigError(f"{where}: unknown model {name!r}{hint} (registered: {', '.join(sorted(known))})")
    return from_dict(cls, values, file=file, prefix=prefix)


def data_filled_config(name: str, values: dict[str, Any], fill: dict[str, Any], file: str | None = None) -> Any:
    """``model_config(name, values)`` with the fields the data decides (``fill``: e.g. num_classes, n_items)
    set where ``values`` leaves them unset; fields the family lacks are skipped, and a recipe value that
    disagrees with the data is an error naming the key."""
    cls = config_class(name)
    fields = {f.name for f in dataclasses.fields(cls)} if cls else set()
    values = dict(values)
    for key, value in fill.items():
        if key not in fields:
            continue
        given = values.get(key)
        if given is not None and given != value:
            raise ConfigError(f"{file + ': ' if file else ''}model.{key}: {given} does not match the data "
                              f"({value}); remove it to take the data's value")
        values[key] = value
    return model_config(name, values, file=file)


def config_class(name: str) -> type | None:
    """The config dataclass of a preset or family name (None if the name is unknown)."""
    if name in _PRESETS:
        return type(_PRESETS[name]())
    return _FAMILIES[name].config_cls if name in _FAMILIES else None


def build_model(config: Any) -> nn.Module:
    """Instantiate the module for a validated family config."""
    return family_of(config).model_cls(config)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered preset or family by name, e.g. ``create_model("gpt-char-small", n_layer=2)``."""
    return build_model(model_config(name, overrides))
