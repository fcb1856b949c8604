"""Write a whole output folder atomically: fill a hidden sibling folder, fsync, then rename it into place.

A reader (or a crashed writer) sees the previous folder or the complete new one, never a half-written
one. A non-empty target is replaced only when the caller says so (``--force``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fromzero.atomic import fsync_dir
from fromzero.errors import CheckpointError


def check_target(out_dir: Path, force: bool) -> None:
    """Refuse a file, or a non-empty folder without ``force``; checked before any work starts."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointError(f"{out_dir} is a file; choose a folder path")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise CheckpointError(f"{out_dir} is not empty; choose an empty or new folder, or pass --force to replace it")


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for folder in sorted({p.parent for p in root.rglob("*")} | {root}):
        fsync_dir(folder)


@contextlib.contextmanager
def staged_dir(out_dir: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out_dir``; on success it becomes ``out_dir`` in one rename."""
    out_dir = Path(out_dir)
    check_target(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        _swap_in(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; a previous ``out_dir`` is moved aside first and restored if that fails."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        fsync_dir(out_dir.parent)
        return
    holder = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
    previous = holder / "previous"
    os.replace(out_dir, previous)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        os.replace(previous, out_dir)
        shutil.rmtree(holder, ignore_errors=True)
        raise
    fsync_dir(out_dir.parent)
    shutil.rmtree(holder, ignore_errors=True)
