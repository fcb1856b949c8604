"""Atomic file writes: temp file in the same folder, fsync, rename.

A reader sees either the old file or the complete new one, never a torn
write, even if the process is killed mid-write (POSIX rename is atomic
within a filesystem). A write that fails because the disk is full raises
:class:`~fromzero.errors.DiskFullError` naming the folder; the temp file is
removed and the old file, if any, is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from fromzero.errors import ConfigError, DiskFullError

# safetensors reports a full disk as text inside its own error type, not as an errno
_DISK_FULL_TEXT = ("No space left on device", "StorageFull", "Disk quota exceeded")


def fsync_dir(path: str | Path) -> None:
    """Flush a directory entry (makes a rename durable)."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(err: BaseException) -> bool:
    """True if ``err`` says the disk or the quota is full (an OSError's errno, or a library's message)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(text in str(err) for text in _DISK_FULL_TEXT)


@contextlib.contextmanager
def disk_full_as_error(folder: str | Path, what: str, left: str = "nothing half-written is left") -> Iterator[None]:
    """Turn a full-disk failure inside the block into a one-line :class:`DiskFullError` naming ``folder``
    and ``what`` was not written (``left``: what the failed write leaves behind); other errors pass."""
    try:
        yield
    except Exception as err:
        if is_disk_full(err):
            raise DiskFullError(f"{folder}: the disk is full; {what} was not written ({left}); free some space "
                                "and run again") from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and rename over ``path``."""
    path = Path(path)
    with disk_full_as_error(path.parent, path.name):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
            fsync_dir(path.parent)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def require_new_folder(path: str | Path, fix: str = "choose a new folder or delete this one") -> None:
    """An output folder must be new or empty: an existing file or a non-empty folder there is a ConfigError,
    so nothing the user already has is overwritten."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is a file, not a folder; {fix}")
    if path.is_dir() and any(path.iterdir()):
        raise ConfigError(f"{path}: the folder is not empty; {fix}")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Atomically write ``path`` by calling ``writer(tmp_path)`` (e.g. safetensors' save_file)."""
    with atomic_path(path) as tmp:
        writer(tmp)
