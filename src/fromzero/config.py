"""Typed configuration: nested dataclasses <-> YAML, dotted overrides, validation.

A recipe is a YAML mapping whose sections are dataclasses. Loading checks
every key before any work starts: an unknown key (with a closest-match
hint), a wrong type, or an impossible value raises :class:`ConfigError`
naming the file and the dotted key.

Dataclasses validate themselves in ``__post_init__`` with :func:`require`,
which names the offending field; :func:`from_dict` adds the file and the
section path. A field's ``help`` metadata is its CLI help text.

This module imports no other fromzero module except ``errors``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from fromzero.errors import ConfigError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` as a string; users mean a float (YAML 1.2 agrees)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


class InvalidValue(ConfigError, ValueError):
    """Raised by :func:`require` inside a dataclass; carries the field name (:func:`from_dict` adds the file
    and section; the CLI names the option)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def require(condition: bool, key: str, message: str) -> None:
    """Validate one field: raise :class:`InvalidValue` for ``key`` unless ``condition``."""
    if not condition:
        raise InvalidValue(key, message)


def field(default: Any = dataclasses.MISSING, *, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field with CLI help text (shown by ``fromzero ... --help-config``)."""
    if isinstance(default, (list, dict)):
        value = default
        kwargs["default_factory"] = lambda: type(value)(value)
        return dataclasses.field(metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def _where(file: str | None, key: str) -> str:
    return f"{file}: {key}" if file else key


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if get_origin(tp) in (list, tuple):
        return f"list of {_type_name(get_args(tp)[0])}" if get_args(tp) else "list"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, file: str | None) -> Any:
    """Check ``value`` against type ``tp``; convert nested dicts and int->float."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            try:
                return _convert(value, option, key, file)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(
            f"{_where(file, key)}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
        )
    if tp is type(None):
        if value is None:
            return None
    elif origin is Literal:
        if value in get_args(tp):
            return value
        choices = ", ".join(repr(a) for a in get_args(tp))
        hint = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"{_where(file, key)}: {value!r} is not one of {choices}{extra}")
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value, file=file, prefix=key)
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            (item_tp, *_) = get_args(tp) or (Any,)
            items = [_convert(v, item_tp, f"{key}[{i}]", file) for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, tp):
        return value
    raise ConfigError(
        f"{_where(file, key)}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )


def from_dict(cls: type[T], data: dict[str, Any], *, file: str | None = None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking keys, types and values.

    ``file`` and ``prefix`` (the dotted section path) make error messages
    point at the exact key, e.g. ``recipes/x.yaml: model.n_embd: ...``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(file, prefix or '<root>')}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    dot = f"{prefix}." if prefix else ""
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean '{dot}{close[0]}'?" if close else ""
            valid = ", ".join(sorted(fields))
            raise ConfigError(f"{_where(file, dot + str(key))}: unknown key{hint} (valid keys: {valid})")
        kwargs[key] = _convert(value, hints[key], dot + key, file)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{_where(file, dot + missing[0])}: required key is missing")
    try:
        return cls(**kwargs)
    except InvalidValue as err:
        raise ConfigError(f"{_where(file, dot + err.key)}: {err.message}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass (possibly nested) -> plain YAML-serialisable dict."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or invalid YAML is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start} is 0x{err.object[err.start]:02x}); a recipe is "
                          "a YAML text file") from None
    if not text.strip():
        raise ConfigError(f"{path}: the file is empty; write the recipe's sections (`fromzero pretrain "
                          "--help-config` lists them), or give no recipe to use the built-in defaults")
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from None
    if data is None:  # only comments
        raise ConfigError(f"{path}: the file holds only comments; write the recipe's sections, or give no recipe "
                          "to use the built-in defaults")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the recipe must be a YAML mapping of sections")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``--train.max_steps=50`` -> (["train", "max_steps"], 50); values parse as YAML."""
    body = text[2:] if text.startswith("--") else text
    if "=" not in body:
        raise ConfigError(f"override {text!r}: expected --section.key=value")
    key, raw = body.split("=", 1)
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty key segment")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted overrides applied (validated later)."""
    import copy

    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def describe(cls: type, prefix: str = "") -> list[str]:
    """One line per key: ``section.key (type, default): help`` for CLI help."""
    lines = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            lines.extend(describe(tp, key + "."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "required"
        lines.append(f"{key} ({_type_name(tp)}, default {default!r}): {f.metadata.get('help', '')}")
    return lines


def dump_yaml(data: dict[str, Any]) -> str:
    """Serialise a plain dict as block-style YAML with keys in definition order."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
