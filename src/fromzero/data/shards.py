"""Prepared token folders: write them (:func:`prepare_corpus`) and read them back (:func:`load_shards`).

``prepare_corpus`` is the streaming pipeline of
:mod:`fromzero.data.prepare_stream`: ``tokenizer.json``, ``train-NNNNN.bin``
/ ``val-NNNNN.bin`` shards and ``manifest.json`` (format 2). ``load_shards``
reads those as one memmapped stream per split, and still reads the single-file
folders of format 1 (``train.bin``, ``val.bin``, ``meta.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fromzero.data.prepare_options import PrepareOptions
from fromzero.data.prepare_stream import prepare_stream
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig, dtype_for_vocab
from fromzero.errors import DataError

FORMAT_VERSION = 1  # the single-file layout this module still reads
_META_KEYS = ("dtype", "vocab_size", "train_tokens", "val_tokens", "format_version")
_PREPARE_HINT = "run `fromzero prepare` to create it"


@dataclass
class ShardInfo:
    """Where :func:`prepare_corpus` wrote its files, and the manifest it recorded."""

    out_dir: Path
    tokenizer_path: Path
    manifest_path: Path
    meta: dict[str, Any]


def prepare_corpus(
    inputs: Sequence[str | Path] | str | Path,
    out_dir: str | Path,
    tokenizer_cfg: TokenizerConfig | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 1337,
    chunk_tokens: int = 4096,
    text_field: str = "text",
    tokenizer: Tokenizer | None = None,
    options: PrepareOptions | None = None,
    progress: bool = True,
) -> ShardInfo:
    """Read ``inputs``, train (or reuse) a tokenizer, clean, encode, split and shard them into ``out_dir``.

    ``options`` sets everything (workers, shard size, cleaning, slices); without it the keyword
    arguments give the options of a recipe's ``data`` section, encoded in this process.
    """
    if options is None:
        options = PrepareOptions(val_fraction=val_fraction, seed=seed, chunk_tokens=chunk_tokens,
                                 text_field=text_field)
    manifest = prepare_stream(inputs, out_dir, options, tokenizer_cfg=tokenizer_cfg, tokenizer=tokenizer,
                              progress=progress)
    out = Path(out_dir)
    return ShardInfo(out_dir=out, tokenizer_path=out / "tokenizer.json", manifest_path=out / "manifest.json",
                     meta=manifest)


def _read_meta(meta_path: Path) -> dict[str, Any]:
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: missing; {_PREPARE_HINT}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{meta_path}: corrupt ({err}); {_PREPARE_HINT} again") from None
    missing = [k for k in _META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise DataError(f"{meta_path}: corrupt (missing {', '.join(missing)}); {_PREPARE_HINT} again")
    if meta["format_version"] != FORMAT_VERSION:
        raise DataError(
            f"{meta_path}: format_version {meta['format_version']} is not supported "
            f"(expected {FORMAT_VERSION}); {_PREPARE_HINT} again"
        )
    if meta["dtype"] != dtype_for_vocab(int(meta["vocab_size"])).name:
        raise DataError(
            f"{meta_path}: dtype {meta['dtype']} does not fit vocab_size {meta['vocab_size']}; {_PREPARE_HINT} again"
        )
    return meta


def _open_split(path: Path, dtype: np.dtype, expected: int) -> np.ndarray:
    """Read-only memmap of one split, checked against the token count in meta.json."""
    if not path.is_file():
        raise DataError(f"{path}: missing; {_PREPARE_HINT}")
    size = path.stat().st_size
    if size % dtype.itemsize:
        raise DataError(
            f"{path}: size {size} bytes is not a multiple of {dtype.itemsize} ({dtype.name}); "
            f"the file is corrupt, {_PREPARE_HINT} again"
        )
    if size // dtype.itemsize != expected:
        raise DataError(
            f"{path}: holds {size // dtype.itemsize} tokens but meta.json says {expected}; "
            f"the file is corrupt, {_PREPARE_HINT} again"
        )
    if size == 0:  # mmap cannot map an empty file
        empty = np.empty(0, dtype=dtype)
        empty.flags.writeable = False
        return empty
    return np.memmap(path, dtype=dtype, mode="r")


def load_shards(directory: str | Path, verify: str = "sha256") -> tuple[Any, Any, dict[str, Any]]:
    """(train tokens, val tokens, meta) from a prepared folder, as read-only memmapped streams.

    A sharded folder gives :class:`~fromzero.data.token_shards.ShardedTokens` (every shard's size, and with
    ``verify="sha256"`` its hash, checked against the manifest); a single-file folder gives memmaps.

    An empty split (``val_fraction=0``) comes back as a read-only empty array.
    Missing or inconsistent files raise a :class:`DataError` naming the file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory; {_PREPARE_HINT}")
    if not (directory / "meta.json").is_file():  # format 2 (or an interrupted prepare, which it explains)
        from fromzero.data.token_shards import open_manifest

        return open_manifest(directory, verify=verify)
    meta = _read_meta(directory / "meta.json")
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    tokenizer = Tokenizer.load(directory / "tokenizer.json")
    if tokenizer.vocab_size != meta["vocab_size"]:
        raise DataError(
            f"{directory / 'tokenizer.json'}: vocab_size {tokenizer.vocab_size} does not match "
            f"meta.json's {meta['vocab_size']}; {_PREPARE_HINT} again"
        )
    train = _open_split(directory / "train.bin", dtype, int(meta["train_tokens"]))
    val = _open_split(directory / "val.bin", dtype, int(meta["val_tokens"]))
    return train, val, meta
