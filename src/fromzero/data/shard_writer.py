"""Token shards on disk: ``train-00000.bin``, ``train-00001.bin``, ... each written whole and atomically.

A shard is a raw little-endian numpy array (read back with ``np.memmap``).
The writer buffers one shard, writes it through a temp file and a rename,
and records ``{"file", "tokens", "documents", "sha256"}`` for the manifest.
A shard on disk is therefore always complete; the caller decides when a
shard is cut (see :mod:`fromzero.data.prepare_stream`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from fromzero.atomic import write_with


def shard_name(prefix: str, index: int) -> str:
    """``train-00003.bin`` for ``("train", 3)``."""
    return f"{prefix}-{index:05d}.bin"


class ShardWriter:
    """Buffers tokens of one split and writes them as numbered shards of ``folder``.

    ``capacity`` (tokens) preallocates the buffer for fixed-size shards (the
    training split); ``None`` grows it as needed (the validation split, cut
    whenever a training shard is). ``entries`` continues a resumed run.
    """

    def __init__(self, folder: Path, prefix: str, dtype: np.dtype, capacity: int | None,
                 entries: list[dict[str, Any]] | None = None) -> None:
        self.folder, self.prefix, self.capacity = Path(folder), prefix, capacity
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.entries: list[dict[str, Any]] = list(entries or [])
        self._fixed = np.empty(capacity, dtype=self.dtype) if capacity else None
        self._parts: list[np.ndarray] = []
        self._count = 0
        self._documents = 0

    @property
    def buffered(self) -> int:
        """Tokens waiting for the next shard."""
        return self._count

    def room(self) -> int:
        """Tokens the current shard can still take (unbounded without a capacity)."""
        return self.capacity - self._count if self.capacity else 1 << 62

    @property
    def full(self) -> bool:
        return self.capacity is not None and self._count == self.capacity

    @property
    def written_tokens(self) -> int:
        """Tokens in shards already on disk."""
        return sum(int(e["tokens"]) for e in self.entries)

    def append(self, tokens: np.ndarray) -> None:
        """Buffer ``tokens``; the caller keeps a fixed-size shard from overflowing (see :meth:`room`)."""
        n = len(tokens)
        if self._fixed is not None:
            if n > self.room():
                raise ValueError(f"{n} tokens do not fit the {self.room()} left in this shard")
            self._fixed[self._count : self._count + n] = tokens
        elif n:
            self._parts.append(np.asarray(tokens, dtype=self.dtype))
        self._count += n

    def end_document(self) -> None:
        """Count a document whose last token was just appended."""
        self._documents += 1

    def flush(self) -> dict[str, Any] | None:
        """Write the buffered tokens as the next shard (nothing when empty); returns its manifest entry."""
        if self._count == 0:
            return None
        if self._fixed is not None:
            data = self._fixed[: self._count]
        else:
            data = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        name = shard_name(self.prefix, len(self.entries))
        write_with(self.folder / name, data.tofile)
        entry = {"file": name, "tokens": int(self._count), "documents": self._documents,
                 "sha256": hashlib.sha256(memoryview(np.ascontiguousarray(data)).cast("B")).hexdigest()}
        self.entries.append(entry)
        self._parts, self._count, self._documents = [], 0, 0
        return entry

    def take_buffer(self) -> np.ndarray:
        """The buffered tokens, removed from the writer (for the small-corpus split, which re-cuts them)."""
        if self._fixed is not None:
            data = self._fixed[: self._count].copy()
        else:
            data = np.concatenate(self._parts) if self._parts else np.empty(0, dtype=self.dtype)
        self._parts, self._count, self._documents = [], 0, 0
        return data
