"""What ``fromzero prepare`` does with a corpus: split, shard size, workers, cleaning, slices.

Every option is checked before anything is read or written; a bad value is a
one-line :class:`~fromzero.errors.ConfigError` naming the option. The
options that change the output (everything but ``workers``) form the
fingerprint a resumed ``prepare`` must match.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from fromzero.errors import ConfigError

DEFAULT_SHARD_TOKENS = 100_000_000
DEFAULT_SAMPLE_BYTES = 100_000_000  # enough text to fit an 8k-32k vocabulary; bounded whatever the corpus
_OUTPUT_ONLY = ("workers",)  # options that never change a byte of the output


def default_workers() -> int:
    """One encoding worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class PrepareOptions:
    """Options of one ``prepare`` run (CLI flags of the same names, with dashes)."""

    val_fraction: float = 0.1
    seed: int = 1337
    chunk_tokens: int = 4096  # unit of the validation split inside long documents
    shard_tokens: int = DEFAULT_SHARD_TOKENS
    text_field: str = "text"
    workers: int = 1
    tokenizer_sample_bytes: int = DEFAULT_SAMPLE_BYTES
    dedup: bool = True
    near_dedup: bool = False
    near_threshold: float = 0.8
    quality: dict[str, Any] = field(default_factory=dict)  # QualityFilter options, e.g. {"min_chars": 200}
    slices: int = 1
    slice: int = 0

    def __post_init__(self) -> None:
        checks = [
            (0 <= self.val_fraction < 1, "val_fraction", f"must be in [0, 1), got {self.val_fraction}"),
            (self.chunk_tokens >= 1, "chunk_tokens", f"must be >= 1, got {self.chunk_tokens}"),
            (self.shard_tokens >= 1, "shard_tokens", f"must be >= 1, got {self.shard_tokens}"),
            (self.workers >= 1, "workers", f"must be >= 1, got {self.workers}"),
            (self.tokenizer_sample_bytes >= 1, "tokenizer_sample_bytes",
             f"must be >= 1, got {self.tokenizer_sample_bytes}"),
            (0 < self.near_threshold <= 1, "near_threshold", f"must be in (0, 1], got {self.near_threshold}"),
            (self.slices >= 1, "slices", f"must be >= 1, got {self.slices}"),
            (0 <= self.slice < self.slices, "slice",
             f"must be in [0, {self.slices - 1}] for --slices {self.slices}, got {self.slice}"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"prepare --{key.replace('_', '-')}: {message}")

    def fingerprint(self) -> dict[str, Any]:
        """The options that decide the output bytes (a resumed run must match them)."""
        return {k: v for k, v in asdict(self).items() if k not in _OUTPUT_ONLY}
