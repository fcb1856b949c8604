"""The output folder of ``prepare``: new, interrupted (resume it) or complete, and the small-corpus split.

An interrupted folder holds ``.prepare-state.json`` (rewritten after every
complete shard) and no ``manifest.json``. Running the same command again
resumes it; another command is refused rather than mixing two outputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fromzero.data.hashing import unit_uniform
from fromzero.data.prepare_options import PrepareOptions
from fromzero.data.shard_writer import ShardWriter
from fromzero.data.token_shards import MANIFEST, PREPARE_STATE
from fromzero.errors import ConfigError, DataError

STATE = PREPARE_STATE
KEYS_FILE = "document_keys.bin"  # a slice's kept documents' content keys (uint64), for the merge's report
MIN_CHUNKS = 10  # a small corpus is cut into this many chunks so a validation split is still possible
_FRESH = "choose a new output folder or delete this one"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable ({err}); delete {path.parent} and start again") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a JSON object; delete {path.parent} and start again")
    return data


def _check_shards(out: Path, state: dict[str, Any]) -> None:
    itemsize = np.dtype(state["dtype"]).itemsize
    for entries in state["shards"].values():
        for entry in entries:
            path = out / entry["file"]
            if not path.is_file() or path.stat().st_size != entry["tokens"] * itemsize:
                raise DataError(f"{path}: missing or changed since the interrupted run; delete {out} and start again")


def _leftover(path: Path) -> bool:
    """A temp file of an atomic write cut short by a kill: hidden, ``.NAME.<random suffix>.tmp``."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def open_output_folder(out: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """None for a new folder; the resume state of an interrupted run of the same command;
    ``{"complete": True}`` when this command already finished there. Anything else is a ConfigError."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is a file, not a folder; {_FRESH}")
    if not out.is_dir() or not [p for p in out.iterdir() if not _leftover(p)]:
        return None
    if (out / MANIFEST).is_file():
        manifest = _read_json(out / MANIFEST)
        if manifest.get("options") == fingerprint["options"] and manifest.get("sources") == fingerprint["inputs"]:
            return {"complete": True}
        raise ConfigError(f"{out}: already holds prepared shards of other inputs or options; {_FRESH}")
    if not (out / STATE).is_file():
        raise ConfigError(f"{out}: the folder is not empty; {_FRESH}")
    state = _read_json(out / STATE)
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(f"{out}: an interrupted `prepare` of other inputs or options; rerun that command to "
                          f"finish it, or {_FRESH}")
    _check_shards(out, state)
    for path in out.iterdir():  # half-written temp files of the killed run; their shards are written again
        if _leftover(path):
            path.unlink(missing_ok=True)
    return state


def small_corpus_split(writers: dict[str, ShardWriter], options: PrepareOptions, eos_id: int | None,
                       inputs: Sequence[str | Path]) -> None:
    """Re-split a corpus that fits in memory and left a split empty (a few short documents).

    The token stream is cut into ``MIN_CHUNKS`` chunks and ``val_fraction`` of them (at least one)
    are held out, evenly spread from a seeded offset.
    """
    train, val = writers["train"], writers["val"]
    if train.buffered and val.buffered:
        return
    stream = (train if train.buffered else val).take_buffer()
    if len(stream) < 2:
        raise DataError(f"the corpus {', '.join(map(str, inputs))} has only {len(stream)} token(s), too few to "
                        "split off a validation set; add more text or use val_fraction=0")
    chunk = -(-len(stream) // MIN_CHUNKS)  # ceil: at most MIN_CHUNKS chunks and no tiny tail chunk
    n_chunks = math.ceil(len(stream) / chunk)
    n_val = min(max(1, round(options.val_fraction * n_chunks)), n_chunks - 1)
    u = unit_uniform(options.seed, n_chunks)
    held_out = {int((j + u) * n_chunks / n_val) for j in range(n_val)}
    for k in range(n_chunks):
        piece = stream[k * chunk : (k + 1) * chunk]
        writer = val if k in held_out else train
        writer.append(piece)
        ends = 0 if eos_id is None else int(np.count_nonzero(piece == eos_id))
        for _ in range(ends):
            writer.end_document()
