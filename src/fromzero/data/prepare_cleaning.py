"""Which documents ``prepare`` keeps, and the report of what it read, dropped and wrote.

Checks run in a fixed order, first failure wins: empty text, the quality
filters (both in the workers, :mod:`~fromzero.data.encode_pool`), exact
duplicates (same text after normalisation), then MinHash near-duplicates
(both here, in stream order). The counts are part of the output: the same
inputs and options always give the same report, whatever the number of
workers.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fromzero.data.corpus import Document
from fromzero.data.dedup import ExactDedup, NearDedup
from fromzero.data.prepare_options import PrepareOptions
from fromzero.data.quality_filters import QualityFilter


@dataclass
class PrepareReport:
    """Counts of one ``prepare``: documents read, dropped by reason and kept; tokens and shards written."""

    documents_read: int = 0
    dropped: Counter = field(default_factory=Counter)
    documents_kept: int = 0
    train_tokens: int = 0
    val_tokens: int = 0
    tokens_per_shard: dict[str, list[int]] = field(default_factory=lambda: {"train": [], "val": []})
    keys: list[int] | None = None  # content keys of the kept documents, collected for sliced runs

    def keep(self, key: int) -> None:
        """Count a kept document (and remember its key when collecting them)."""
        self.documents_kept += 1
        if self.keys is not None:
            self.keys.append(key)

    def as_dict(self) -> dict[str, Any]:
        return {"documents_read": self.documents_read, "dropped": dict(sorted(self.dropped.items())),
                "documents_kept": self.documents_kept, "train_tokens": self.train_tokens,
                "val_tokens": self.val_tokens,
                "shards": {k: len(v) for k, v in self.tokens_per_shard.items()},
                "tokens_per_shard": self.tokens_per_shard}


class Deduper:
    """The order-dependent decisions, taken in stream order in the main process: exact and near duplicates."""

    def __init__(self, options: PrepareOptions) -> None:
        self.exact = ExactDedup() if options.dedup else None
        self.near = NearDedup(**near_options(options)) if options.near_dedup else None

    def reason(self, key: int, bands: list[int] | None) -> str | None:
        """``exact_duplicate``, ``near_duplicate`` or None (kept); records the document when kept."""
        if self.exact is not None and self.exact.seen(key):
            return "exact_duplicate"
        if self.near is not None and bands is not None and self.near.seen_bands(bands):
            return "near_duplicate"
        return None


def near_options(options: PrepareOptions) -> dict[str, Any] | None:
    """NearDedup's arguments for ``options`` (None when near-dedup is off)."""
    return {"threshold": options.near_threshold, "seed": options.seed} if options.near_dedup else None


def sample_candidates(documents: Iterator[Document], options: PrepareOptions) -> Iterator[tuple[int, str]]:
    """``(key, text)`` of the documents a tokenizer sample may draw from: not empty, passing the quality
    filters. The key hashes the raw text (no normalisation: this pass must be cheap)."""
    quality = QualityFilter.from_options(options.quality)
    for doc in documents:
        if doc.text.strip() and not (quality.active() and quality.check(doc.text)):
            yield int.from_bytes(hashlib.blake2b(doc.text.encode("utf-8"), digest_size=8).digest(), "little"), \
                doc.text
