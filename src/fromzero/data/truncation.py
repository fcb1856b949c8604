"""The truncation policy for sequences longer than the model allows.

:func:`fit_length`, :func:`fit_pair`: ``truncate`` (default) cuts tokens from
the end (for pairs, from the longer segment first, as BERT's
``truncate_seq_pair``) and counts what it cut in :class:`TruncationStats`,
which callers report; ``error`` stops at the first over-long example, naming
it. Extractive QA cuts only the context; an answer that falls outside it is
counted and that question is scored as unanswerable by the encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fromzero.errors import DataError

TruncationPolicy = Literal["truncate", "error"]


@dataclass
class TruncationStats:
    """How many sequences the truncation policy cut, and how many tokens (and QA answers) it dropped."""

    seen: int = 0
    truncated: int = 0
    tokens_dropped: int = 0
    answers_lost: int = 0

    def __str__(self) -> str:
        text = f"truncated {self.truncated} of {self.seen} sequences ({self.tokens_dropped} tokens dropped)"
        return text + (f"; {self.answers_lost} answers fell outside the context" if self.answers_lost else "")


def _too_long(where: str, n: int, max_tokens: int) -> DataError:
    return DataError(f"{where or 'data'}: {n} tokens exceed the limit of {max_tokens}; shorten the text, raise the "
                     "maximum length, or set truncation: truncate")


def fit_length(ids: Sequence[int], max_tokens: int, policy: TruncationPolicy = "truncate", where: str = "",
               stats: TruncationStats | None = None) -> list[int]:
    """At most ``max_tokens`` ids: the first ones (``truncate``) or a DataError (``error``)."""
    ids = list(ids)
    if stats is not None:
        stats.seen += 1
    if len(ids) <= max_tokens:
        return ids
    if policy == "error":
        raise _too_long(where, len(ids), max_tokens)
    if stats is not None:
        stats.truncated += 1
        stats.tokens_dropped += len(ids) - max_tokens
    return ids[:max_tokens]


def fit_pair(a: Sequence[int], b: Sequence[int], max_tokens: int, policy: TruncationPolicy = "truncate",
             where: str = "", stats: TruncationStats | None = None) -> tuple[list[int], list[int]]:
    """Fit two segments into ``max_tokens`` together, dropping the last token of the longer one at a time."""
    a, b = list(a), list(b)
    if stats is not None:
        stats.seen += 1
    excess = len(a) + len(b) - max_tokens
    if excess <= 0:
        return a, b
    if policy == "error":
        raise _too_long(where, len(a) + len(b), max_tokens)
    while len(a) + len(b) > max_tokens:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    if stats is not None:
        stats.truncated += 1
        stats.tokens_dropped += excess
    return a, b
