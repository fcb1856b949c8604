"""Simple document quality filters, after the Gopher rules (Rae et al., 2021, "Scaling Language Models:
Methods, Analysis & Insights from Training Gopher", appendix A.1.1).

Every filter is off by default, so nothing is dropped unless asked. The
Gopher paper's values, for English web text: ``min_words=50``,
``max_symbol_ratio=0.1``, ``min_alpha_ratio=0.8``,
``max_duplicate_line_ratio=0.3``.

Words are the whitespace-separated pieces of the text. Word-based filters
(``min_words``, ``max_symbol_ratio``, ``min_alpha_ratio``) do not suit
languages written without spaces (Chinese, Japanese, Thai): a whole
paragraph there is one "word". Use ``min_chars`` for such corpora.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fromzero.errors import ConfigError

# Reason names, in the order the filters run (the first failure is reported).
QUALITY_REASONS = ("too_short_chars", "too_few_words", "symbol_ratio", "alpha_ratio", "duplicate_lines")


def symbol_ratios(words: list[str], text: str) -> tuple[float, float]:
    """('#' per word, ellipses per word); an ellipsis is '...' or '…'. No words counts as one word."""
    n = max(len(words), 1)
    return text.count("#") / n, (text.count("...") + text.count("\u2026")) / n


def alpha_ratio(words: list[str]) -> float:
    """Share of words with at least one alphabetic character (0.0 for no words)."""
    if not words:
        return 0.0
    return sum(any(c.isalpha() for c in w) for w in words) / len(words)


def duplicate_line_ratio(text: str) -> float:
    """Share of non-blank lines (compared stripped) equal to an earlier line (0.0 for no lines)."""
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return 0.0
    return (len(lines) - len(set(lines))) / len(lines)


@dataclass
class QualityFilter:
    """Which documents to drop; :meth:`check` names the first rule a document fails.

    - ``min_chars``: drop texts with fewer characters (surrounding whitespace not counted).
    - ``min_words``: drop texts with fewer whitespace-separated words.
    - ``max_symbol_ratio``: drop texts whose '#' count per word, or ellipsis
      count per word, is above it (each checked on its own, as Gopher does).
    - ``min_alpha_ratio``: drop texts where the share of words holding an
      alphabetic character is below it.
    - ``max_duplicate_line_ratio``: drop texts where the share of lines
      repeating an earlier line is above it.

    Boundaries pass: a text exactly at a limit is kept.
    """

    min_chars: int = 0
    min_words: int = 0
    max_symbol_ratio: float | None = None
    min_alpha_ratio: float | None = None
    max_duplicate_line_ratio: float | None = None

    def active(self) -> bool:
        """True when some filter can drop a document."""
        return (self.min_chars > 0 or self.min_words > 0 or self.max_symbol_ratio is not None
                or self.min_alpha_ratio is not None or self.max_duplicate_line_ratio is not None)

    def check(self, text: str) -> str | None:
        """The reason name (one of ``QUALITY_REASONS``) of the first failed filter, or None to keep ``text``."""
        if len(text.strip()) < self.min_chars:
            return "too_short_chars"
        words = text.split()
        if len(words) < self.min_words:
            return "too_few_words"
        if self.max_symbol_ratio is not None and max(symbol_ratios(words, text)) > self.max_symbol_ratio:
            return "symbol_ratio"
        if self.min_alpha_ratio is not None and alpha_ratio(words) < self.min_alpha_ratio:
            return "alpha_ratio"
        if self.max_duplicate_line_ratio is not None and duplicate_line_ratio(text) > self.max_duplicate_line_ratio:
            return "duplicate_lines"
        return None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str = "filters") -> QualityFilter:
        """Build from a mapping of option -> value; a bad key or value raises a one-line ConfigError.

        ``where`` prefixes the message (the recipe key or command-line flag the options came from).
        """
        allowed = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for key, value in options.items():
            if key not in allowed:
                raise ConfigError(f"{where}: unknown option {key!r}; allowed keys: {', '.join(allowed)}")
            values[key] = _checked(where, key, value, allowed)
        return cls(**values)


def _checked(where: str, key: str, value: Any, allowed: list[str]) -> Any:
    """``value`` validated for option ``key``: counts are ints >= 0, ratios numbers >= 0 (<= 1 for shares) or None."""
    if key in ("min_chars", "min_words"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}.{key}: expected an integer >= 0, got {value!r} "
                              f"(allowed keys: {', '.join(allowed)})")
        return value
    if value is None:
        return None
    upper = float("inf") if key == "max_symbol_ratio" else 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= upper:
        bound = "a number >= 0" if upper == float("inf") else "a number between 0 and 1"
        raise ConfigError(f"{where}.{key}: expected {bound} or null, got {value!r} "
                          f"(allowed keys: {', '.join(allowed)})")
    return float(value)
