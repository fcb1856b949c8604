"""What every subcommand module shares: the handler type, option value types, one-line argument errors.

Option values are checked as they are parsed (``--top-k 0`` is an error naming ``--top-k``), and a
config dataclass built from options reports its own rules under the option's name, so every bad
command line fails in one line before any work starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from fromzero.config import InvalidValue
from fromzero.errors import ConfigError

Handler = Callable[[argparse.Namespace], int]  # parsed arguments (``overrides`` included) -> exit code
T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are ConfigErrors, so main() prints them as one ``error: ...`` line (exit 2)
    instead of a usage block. Subparsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: every long-running command takes it (main() silences every reporter)."""
    parser.add_argument("--no-progress", action="store_true",
                        help="print no progress (off a terminal, progress is one plain line every ~30 s)")


def _number(kind: type, low: float | None, high: float | None, low_open: bool = False,
            high_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: ``kind`` within [low, high] (open ends where asked), with a message naming the range."""
    lo = "" if low is None else ("(" if low_open else "[") + str(low)
    hi = "" if high is None else str(high) + (")" if high_open else "]")
    wanted = f"in {lo}, {hi}" if low is not None and high is not None else (
        f"{'>' if low_open else '>='} {low}" if low is not None else f"{'<' if high_open else '<='} {high}")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high or value != value:  # NaN compares false with everything
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = f"{kind.__name__} {wanted}"  # argparse shows it in "invalid ... value" messages
    return parse


positive_int = _number(int, 1, None)
non_negative_int = _number(int, 0, None)
non_negative_float = _number(float, 0.0, None)
probability = _number(float, 0.0, 1.0, low_open=True)  # (0, 1]: top-p
unit_interval = _number(float, 0.0, 1.0)  # [0, 1]: a threshold
fraction_below_one = _number(float, 0.0, 1.0, high_open=True)  # [0, 1): a held-out share
port_number = _number(int, 0, 65535)
_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def positive_count(text: str) -> int:
    """An argparse type: a positive integer, optionally with a k/M/G/T suffix (``100M`` = 100,000,000)."""
    scale = _SUFFIXES.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale > 1 else text
    try:
        value = int(float(digits) * scale) if scale > 1 else int(digits)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count like 100000, 100M or 2G, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def from_options(cls: type[T], values: Mapping[str, Any], renamed: Mapping[str, str] | None = None) -> T:
    """``cls(**values)`` where a rule of the dataclass names the option it came from: ``--field-name``, or
    ``renamed[field]`` where the option is called otherwise."""
    try:
        return cls(**values)
    except InvalidValue as err:
        option = (renamed or {}).get(err.key) or f"--{err.key.replace('_', '-')}"
        raise ConfigError(f"{option}: {err.message}") from None


def check_recipe_domain(recipe: str | None, command: str) -> None:
    """A vision recipe given to a text command, or a text recipe given to ``train``: one line naming the
    command that runs it (``runs.recipe_command``)."""
    if recipe is None or not Path(recipe).is_file():
        return
    from fromzero.config import load_yaml
    from fromzero.runs import recipe_command

    owner = recipe_command(load_yaml(recipe))
    if owner is None or (owner == "train") == (command == "train"):  # same domain: the command's own checks
        return
    what = "a vision recipe" if owner == "train" else "a text recipe (no vision task)"
    raise ConfigError(f"{recipe}: {what}; run it with `fromzero {owner} {recipe}`, not `fromzero {command}`")
