"""Choosing parameters or layers by name with glob patterns (``*`` also crosses dots), for freezing and LoRA."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from fromzero.errors import ConfigError


def example_names(names: Sequence[str], n: int = 3) -> str:
    """The first ``n`` names, quoted, for error messages."""
    if not names:
        return "(none)"
    return ", ".join(repr(x) for x in names[:n]) + (", ..." if len(names) > n else "")


def matches_any(name: str, patterns: Sequence[str]) -> bool:
    """True if ``name`` matches one of the globs (:func:`fnmatch.fnmatchcase` on the full dotted name)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def matching(names: Sequence[str], patterns: Sequence[str], key: str, what: str = "parameter") -> set[str]:
    """The names matching any of ``patterns``; a pattern that matches none is a ConfigError naming ``key``."""
    out: set[str] = set()
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ConfigError(f"{key}: {pattern!r} matches no {what}; {what} names look like {example_names(names)}")
        out.update(hits)
    return out
