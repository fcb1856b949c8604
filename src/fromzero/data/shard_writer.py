"""Token shards on disk: ``train-00000.bin``, ``train-00001.bin``, ... each published whole and atomically.

A shard is a raw little-endian numpy array (read back with ``np.memmap``).
Tokens are gathered in a small buffer (:data:`WRITE_BYTES`), appended to a
hidden temp file beside the shard and hashed on the way; the file is fsynced
and renamed into place when the caller cuts the shard. So memory does not
depend on the shard size, and a shard on disk under its own name is always
complete. The writer records
``{"file", "tokens", "documents", "sha256"}`` for the manifest; the caller
decides when a shard is cut (see :mod:`fromzero.data.prepare_stream`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fromzero.atomic import disk_full_as_error, fsync_dir

WRITE_BYTES = 16 << 20  # tokens reach the temp file in writes of about this size


def shard_name(prefix: str, index: int) -> str:
    """``train-00003.bin`` for ``("train", 3)``."""
    return f"{prefix}-{index:05d}.bin"


class ShardWriter:
    """Writes the tokens of one split as numbered shards of ``folder``.

    ``capacity`` (tokens) makes every shard but the last exactly that long
    (the training split); ``None`` leaves the cut to the caller (the
    validation split, cut whenever a training shard is). ``entries``
    continues a resumed run.
    """

    def __init__(self, folder: Path, prefix: str, dtype: np.dtype, capacity: int | None,
                 entries: list[dict[str, Any]] | None = None) -> None:
        self.folder, self.prefix, self.capacity = Path(folder), prefix, capacity
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.entries: list[dict[str, Any]] = list(entries or [])
        self._file = None  # the open temp file of the shard being written
        self._tmp: Path | None = None
        self._parts: list[np.ndarray] = []  # tokens not yet written to the temp file
        self._pending = 0  # their bytes
        self._hash = hashlib.sha256()
        self._count = 0
        self._documents = 0

    @property
    def buffered(self) -> int:
        """Tokens written to the shard not yet cut."""
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
        """Add ``tokens`` to the current shard; the caller keeps a fixed-size shard from overflowing."""
        n = len(tokens)
        if n > self.room():
            raise ValueError(f"{n} tokens do not fit the {self.room()} left in this shard")
        if n:
            self._parts.append(np.asarray(tokens, dtype=self.dtype))
            self._pending += n * self.dtype.itemsize
            self._count += n
            if self._pending >= WRITE_BYTES:
                self._write_parts()

    def _write_parts(self) -> None:
        if not self._parts:
            return
        data = np.concatenate(self._parts).tobytes()
        name = shard_name(self.prefix, len(self.entries))
        with disk_full_as_error(self.folder, name):
            if self._file is None:
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.folder)
                self._file, self._tmp = os.fdopen(fd, "wb"), Path(tmp)
            self._file.write(data)
        self._hash.update(data)
        self._parts, self._pending = [], 0

    def end_document(self) -> None:
        """Count a document whose last token was just appended."""
        self._documents += 1

    def flush(self) -> dict[str, Any] | None:
        """Publish the current shard under its name (nothing when empty); returns its manifest entry."""
        if self._count == 0:
            return None
        self._write_parts()
        name = shard_name(self.prefix, len(self.entries))
        with disk_full_as_error(self.folder, name):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.folder / name)
            fsync_dir(self.folder)
        entry = {"file": name, "tokens": int(self._count), "documents": self._documents,
                 "sha256": self._hash.hexdigest()}
        self.entries.append(entry)
        self._reset()
        return entry

    def take_buffer(self) -> np.ndarray:
        """The tokens of the current shard, removed from the writer (the small-corpus split re-cuts them)."""
        self._write_parts()
        if self._file is None:
            return np.empty(0, dtype=self.dtype)
        self._file.close()
        data = np.fromfile(self._tmp, dtype=self.dtype)
        self._tmp.unlink()
        self._reset()
        return data

    def _reset(self) -> None:
        self._file, self._tmp, self._hash = None, None, hashlib.sha256()
        self._parts, self._pending, self._count, self._documents = [], 0, 0, 0
