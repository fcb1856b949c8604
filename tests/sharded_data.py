"""A format-2 token-shard folder written by hand (independent of `fromzero prepare`), for the loader tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from fromzero.data.tokenizers import Tokenizer, dtype_for_vocab


def _write_split(folder: Path, split: str, tokens: np.ndarray, shard_tokens: int) -> list[dict]:
    """``split-00000.bin, ...``: all shards but the last exactly ``shard_tokens`` long; an empty split is
    one empty shard."""
    entries = []
    for i, start in enumerate(range(0, max(len(tokens), 1), shard_tokens)):
        data = tokens[start:start + shard_tokens].astype(tokens.dtype.newbyteorder("<")).tobytes()
        name = f"{split}-{i:05d}.bin"
        (folder / name).write_bytes(data)
        entries.append({"file": name, "tokens": len(data) // tokens.dtype.itemsize, "documents": 0,
                        "sha256": hashlib.sha256(data).hexdigest()})
    return entries


def write_sharded(folder: Path, tokens: np.ndarray, shard_tokens: int, tokenizer: Path | Tokenizer,
                  val: np.ndarray | None = None) -> Path:
    """Write ``tokens`` (train) and ``val`` (default: empty) as shards of ``shard_tokens`` tokens into a
    new ``folder`` with ``tokenizer`` (a Tokenizer or a tokenizer.json path) and a manifest.json written
    last, in the format `fromzero prepare` writes (format_version 2). Returns ``folder``."""
    folder.mkdir(parents=True)
    tok = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer.load(tokenizer)
    tok.save(folder / "tokenizer.json")
    dtype = dtype_for_vocab(tok.vocab_size)
    train = np.asarray(tokens).astype(dtype)
    val = np.asarray([] if val is None else val).astype(dtype)
    manifest = {
        "kind": "fromzero-token-shards", "format_version": 2, "dtype": dtype.name, "vocab_size": tok.vocab_size,
        "tokenizer_kind": tok.kind,
        "tokenizer_sha256": hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest(),
        "train_tokens": len(train), "val_tokens": len(val), "documents": 0,
        "shards": {"train": _write_split(folder, "train", train, shard_tokens),
                   "val": _write_split(folder, "val", val, shard_tokens)},
        "sources": ["written by tests/sharded_data.py"], "options": {"shard_tokens": shard_tokens},
        "report": {}, "slices": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder
