"""Corpus -> token shards on disk: ``tokenizer.json``, ``train.bin``, ``val.bin``, ``meta.json``.

The token stream (documents joined by the end-of-text token) is cut into
consecutive chunks; a seeded random subset of chunks is the validation
split, so validation text is spread over the corpus yet never overlaps
training text. Each ``.bin`` is a raw little-endian numpy array readable
with ``np.memmap``; ``meta.json`` is written last and marks completion.
Same inputs and seed give byte-identical files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fromzero.atomic import require_new_folder, write_text, write_with
from fromzero.data.corpus import iter_documents
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig, dtype_for_vocab, train_tokenizer
from fromzero.errors import ConfigError, DataError
from fromzero.progress import progress as progress_bar

FORMAT_VERSION = 1
MIN_CHUNKS = 10  # tiny corpora get smaller chunks so a validation split is still possible
_ENCODE_BATCH_DOCS = 64
_META_KEYS = ("dtype", "vocab_size", "train_tokens", "val_tokens", "format_version")
_PREPARE_HINT = "run `fromzero prepare` to create it"


@dataclass
class ShardInfo:
    """Where :func:`prepare_corpus` wrote its files, and the metadata it recorded."""

    out_dir: Path
    tokenizer_path: Path
    train_path: Path
    val_path: Path
    meta_path: Path
    meta: dict[str, Any]


def _encode_stream(docs: list[str], tokenizer: Tokenizer, progress: bool) -> np.ndarray:
    """All documents encoded and joined by the end-of-text token (when the tokenizer has one)."""
    dtype = dtype_for_vocab(tokenizer.vocab_size)
    sep = np.array([] if tokenizer.eos_id is None else [tokenizer.eos_id], dtype=dtype)
    parts: list[np.ndarray] = []
    with progress_bar(total=len(docs), unit="doc", desc="encoding", enabled=progress) as bar:
        for start in range(0, len(docs), _ENCODE_BATCH_DOCS):
            batch = docs[start : start + _ENCODE_BATCH_DOCS]
            for ids in tokenizer.encode_batch(batch):
                if parts:
                    parts.append(sep)
                parts.append(np.asarray(ids, dtype=dtype))
            bar.update(len(batch))
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _split_chunks(n_tokens: int, chunk_tokens: int, val_fraction: float, seed: int) -> tuple[int, list[int]]:
    """(chunk size actually used, sorted validation chunk indices)."""
    if n_tokens < MIN_CHUNKS * chunk_tokens:
        chunk_tokens = max(1, n_tokens // MIN_CHUNKS)
    n_chunks = math.ceil(n_tokens / chunk_tokens)
    if val_fraction == 0:
        return chunk_tokens, []
    if n_chunks < 2:
        raise DataError(
            f"the corpus has only {n_tokens} token(s), too few to split off a validation set; "
            "add more text or use val_fraction=0"
        )
    n_val = min(max(1, round(val_fraction * n_chunks)), n_chunks - 1)
    rng = np.random.default_rng(seed)
    val = sorted(int(i) for i in rng.choice(n_chunks, size=n_val, replace=False))
    return chunk_tokens, val


def _gather(stream: np.ndarray, chunk_tokens: int, chunks: Sequence[int]) -> np.ndarray:
    parts = [stream[i * chunk_tokens : (i + 1) * chunk_tokens] for i in chunks]
    return np.concatenate(parts) if parts else np.empty(0, dtype=stream.dtype)


def _write_array(path: Path, array: np.ndarray) -> None:
    # "<" pins little-endian so shards are portable; on x86/ARM this is a no-op (no copy).
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    write_with(path, little.tofile)


def prepare_corpus(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    tokenizer_cfg: TokenizerConfig | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 1337,
    chunk_tokens: int = 4096,
    text_field: str = "text",
    tokenizer: Tokenizer | None = None,
    progress: bool = True,
) -> ShardInfo:
    """Read ``inputs``, train (or reuse) a tokenizer, encode, split and write the shards to ``out_dir``.

    ``val_fraction`` of the ``chunk_tokens``-long chunks (at least one, unless
    it is 0) go to ``val.bin``, chosen with ``numpy.random.default_rng(seed)``;
    both splits keep the original order. Every file is written atomically.
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction: must be in [0, 1), got {val_fraction}")
    if chunk_tokens < 1:
        raise ConfigError(f"chunk_tokens: must be >= 1, got {chunk_tokens}")
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    require_new_folder(out_dir, "choose a new output folder or delete this one")
    texts = [doc.text for doc in iter_documents(inputs, text_field=text_field)]
    if tokenizer is None:
        tokenizer = train_tokenizer(texts, tokenizer_cfg or TokenizerConfig())
    stream = _encode_stream(texts, tokenizer, progress)
    if stream.size == 0:
        raise DataError(f"no tokens produced from {', '.join(map(str, inputs))}; add text")
    chunk_tokens, val_chunks = _split_chunks(stream.size, chunk_tokens, val_fraction, seed)
    n_chunks = math.ceil(stream.size / chunk_tokens)
    val_set = set(val_chunks)
    train = _gather(stream, chunk_tokens, [i for i in range(n_chunks) if i not in val_set])
    val = _gather(stream, chunk_tokens, val_chunks)

    out = Path(out_dir)
    meta = {"dtype": stream.dtype.name, "vocab_size": tokenizer.vocab_size, "train_tokens": int(train.size),
            "val_tokens": int(val.size), "seed": seed, "val_fraction": val_fraction, "chunk_tokens": chunk_tokens,
            "val_chunks": val_chunks, "sources": [str(s) for s in inputs], "documents": len(texts),
            "tokenizer_kind": tokenizer.kind, "format_version": FORMAT_VERSION}
    info = ShardInfo(out_dir=out, tokenizer_path=out / "tokenizer.json", train_path=out / "train.bin",
                     val_path=out / "val.bin", meta_path=out / "meta.json", meta=meta)
    tokenizer.save(info.tokenizer_path)
    _write_array(info.train_path, train)
    _write_array(info.val_path, val)
    write_text(info.meta_path, json.dumps(info.meta, indent=2, ensure_ascii=False) + "\n")  # last: completion
    return info


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


def load_shards(directory: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(train tokens, val tokens, meta) from a :func:`prepare_corpus` folder, as read-only memmaps.

    An empty split (``val_fraction=0``) comes back as a read-only empty array.
    Missing or inconsistent files raise a :class:`DataError` naming the file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory; {_PREPARE_HINT}")
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
