"""Token shards read as one stream: :class:`ShardedTokens`, and :func:`open_manifest` for a prepared folder.

A ``fromzero prepare`` folder (format 2) holds ``train-00000.bin, train-00001.bin, ...`` and
``val-*.bin``: raw little-endian arrays, each memory-mapped, plus a ``manifest.json`` written last
that lists them with their token counts and sha256. :class:`ShardedTokens` makes a list of such
arrays behave like their concatenation for everything the batch builders do (length, slices,
integer and integer-array indexing) without ever concatenating them: a window inside one shard is a
view of its memmap, a window across a boundary a small copy. So a loader over N shards gives exactly
the batches it would give over one file holding the same tokens.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import DataError

KIND = "fromzero-token-shards"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
PREPARE_STATE = ".prepare-state.json"  # present while `fromzero prepare` has not finished
CHUNK_TOKENS = 1 << 22  # whole-stream passes read this many tokens at a time
_HASH_BLOCK = 1 << 20
_REQUIRED = ("kind", "format_version", "dtype", "vocab_size", "tokenizer_kind", "tokenizer_sha256",
             "train_tokens", "val_tokens", "shards")
_SHARD_KEYS = ("file", "tokens", "sha256")
_AGAIN = "run the same `fromzero prepare` command again"
_REDO = "run `fromzero prepare` again into a new folder to rebuild it"


class ShardedTokens:
    """A read-only 1-D token stream made of several arrays (memmapped shards), indexed as their concatenation.

    Supports ``len``, ``ndim``/``shape``/``size``/``dtype``, ``t[i]`` (negative too), ``t[a:b]`` (a view
    inside one shard, a copy across shards; any step) and ``t[idx]`` for an integer array of any shape
    (vectorised: one ``np.searchsorted`` over the shard offsets). Whole-stream passes go shard by shard
    with :func:`token_chunks`. ``np.asarray(t)`` raises: it would load the whole stream into memory.
    """

    ndim = 1

    def __init__(self, parts: Sequence[np.ndarray], dtype: np.dtype | str | None = None) -> None:
        if dtype is None and not parts:
            raise ValueError("ShardedTokens needs a dtype when it has no parts")
        self.dtype = np.dtype(dtype if dtype is not None else parts[0].dtype)
        for part in parts:
            if part.ndim != 1 or part.dtype != self.dtype:
                raise ValueError(f"every part must be 1-D {self.dtype}, got {part.ndim}-D {part.dtype}")
        self.parts: tuple[np.ndarray, ...] = tuple(p for p in parts if len(p))  # empty shards hold nothing
        # offsets[k] = index of parts[k][0] in the stream; offsets[-1] = total length
        self.offsets = np.concatenate([[0], np.cumsum([len(p) for p in self.parts], dtype=np.int64)])
        self._len = int(self.offsets[-1])

    def __len__(self) -> int:
        return self._len

    @property
    def shape(self) -> tuple[int]:
        return (self._len,)

    @property
    def size(self) -> int:
        return self._len

    @property
    def nbytes(self) -> int:
        return self._len * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"ShardedTokens({len(self.parts)} shards, {self._len} tokens, {self.dtype})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("ShardedTokens is not converted to one array (it would load the whole stream into "
                        "memory); index a slice or an index array, or go shard by shard with token_chunks()")

    def __iter__(self) -> Iterator[Any]:
        for _, chunk in token_chunks(self):
            yield from chunk

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            return self._item(int(key))
        if isinstance(key, slice):
            start, stop, step = key.indices(self._len)
            return self._range(start, stop) if step == 1 else self._take(np.arange(start, stop, step))
        index = None if isinstance(key, tuple) else np.asarray(key)
        if index is None or (index.dtype.kind not in "iu" and index.size):
            raise TypeError(f"ShardedTokens indices must be integers, slices or integer arrays, got {key!r}")
        return self._take(index)

    def _item(self, i: int) -> Any:
        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} is out of bounds for a stream of {self._len} tokens")
        i %= self._len
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return self.parts[k][i - int(self.offsets[k])]

    def _range(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.empty(0, dtype=self.dtype)
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        last = int(np.searchsorted(self.offsets, stop - 1, side="right")) - 1
        if first == last:  # inside one shard: a view of its memmap
            base = int(self.offsets[first])
            return self.parts[first][start - base:stop - base]
        pieces = [self.parts[k][max(start - int(self.offsets[k]), 0):stop - int(self.offsets[k])]
                  for k in range(first, last + 1)]
        return np.concatenate(pieces)

    def _take(self, index: np.ndarray) -> np.ndarray:
        index = index.astype(np.int64, copy=False)
        if not index.size:
            return np.empty(index.shape, dtype=self.dtype)
        low, high = int(index.min()), int(index.max())
        if low < -self._len or high >= self._len:
            raise IndexError(f"an index is out of bounds for a stream of {self._len} tokens")
        if low < 0:
            index = np.where(index < 0, index + self._len, index)
        shard = np.searchsorted(self.offsets, index, side="right") - 1  # same shape as index
        touched = np.flatnonzero(np.bincount(shard.ravel(), minlength=len(self.parts)))  # O(n), no sort
        if len(touched) == 1:  # all inside one shard
            k = int(touched[0])
            return self.parts[k][index - self.offsets[k]]
        out = np.empty(index.shape, dtype=self.dtype)
        for k in touched:  # a loop over the shards touched, not over elements
            where = shard == k
            out[where] = self.parts[k][index[where] - self.offsets[k]]
        return out


def token_chunks(tokens: np.ndarray | ShardedTokens, max_tokens: int = CHUNK_TOKENS
                 ) -> Iterator[tuple[int, np.ndarray]]:
    """``(offset, chunk)`` pieces of a stream in order, at most ``max_tokens`` long, never across shards:
    whole-stream passes (document starts, token counts) in bounded memory, for arrays and shards alike."""
    parts = tokens.parts if isinstance(tokens, ShardedTokens) else (tokens,)
    offsets = tokens.offsets if isinstance(tokens, ShardedTokens) else (0,)
    for part, base in zip(parts, offsets, strict=False):
        for start in range(0, len(part), max_tokens):
            yield int(base) + start, part[start:start + max_tokens]


def as_token_stream(tokens: Any) -> np.ndarray | ShardedTokens:
    """``tokens`` as the batch builders keep it: a :class:`ShardedTokens` unchanged, anything else as an array."""
    return tokens if isinstance(tokens, ShardedTokens) else np.asarray(tokens)


def token_counts(tokens: np.ndarray | ShardedTokens, minlength: int = 0) -> np.ndarray:
    """``np.bincount`` of the whole stream (int64), counted chunk by chunk."""
    counts = np.zeros(minlength, dtype=np.int64)
    for _, chunk in token_chunks(tokens):
        part = np.bincount(chunk, minlength=len(counts))
        if len(part) > len(counts):
            counts = np.concatenate([counts, np.zeros(len(part) - len(counts), dtype=np.int64)])
        counts += part
    return counts


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (memory stays constant)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _fail(path: Path, problem: str, fix: str = _REDO) -> DataError:
    return DataError(f"{path}: {problem}; {fix}")


def _read_manifest(path: Path) -> dict[str, Any]:
    """manifest.json parsed and its structure checked (keys, kinds of values); nothing else is opened."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(path, f"unreadable ({' '.join(str(err).split())})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise _fail(path, f"not a token-shard manifest (kind is not {KIND!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _fail(path, f"format_version {manifest.get('format_version')!r} is not supported (this version of "
                          f"fromzero reads {FORMAT_VERSION})", "run `fromzero prepare` again with this version")
    missing = [k for k in _REQUIRED if k not in manifest]
    shards = manifest.get("shards")
    if not missing and isinstance(shards, dict):
        missing = [f"shards.{s}" for s in ("train", "val") if not isinstance(shards.get(s), list)]
        for split in ("train", "val"):
            entries = shards.get(split)
            for i, entry in enumerate(entries if isinstance(entries, list) else []):
                lacking = [k for k in _SHARD_KEYS if not isinstance(entry, dict) or k not in entry]
                missing += [f"shards.{split}[{i}].{k}" for k in lacking]
    elif not missing:
        missing = ["shards.train", "shards.val"]
    if missing:
        raise _fail(path, f"corrupt (missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})")
    counts = {k: manifest[k] for k in ("vocab_size", "train_tokens", "val_tokens")}
    counts.update({f"shards.{s}[{i}].tokens": e["tokens"] for s in ("train", "val")
                   for i, e in enumerate(shards[s])})
    bad = next((k for k, v in counts.items() if type(v) is not int or v < (k == "vocab_size")), None)
    if bad is not None:
        raise _fail(path, f"corrupt ({bad} is {counts[bad]!r}, not a count)")
    return manifest


def _token_dtype(path: Path, manifest: dict[str, Any]) -> np.dtype:
    """The shards' little-endian integer dtype, checked to hold every id below vocab_size."""
    try:
        dtype = np.dtype(manifest["dtype"])
    except TypeError:
        dtype = None
    vocab = manifest["vocab_size"]
    if dtype is None or dtype.kind not in "iu" or np.iinfo(dtype).max < vocab - 1:
        raise _fail(path, f"dtype {manifest['dtype']!r} cannot hold the token ids of vocab_size {vocab}")
    return dtype.newbyteorder("<")


def _check_tokenizer(directory: Path, manifest: dict[str, Any]) -> None:
    """tokenizer.json is the one the shards were encoded with (its sha256) and has vocab_size tokens."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise _fail(path, "missing (the shards cannot be decoded without it)")
    if sha256_file(path) != manifest["tokenizer_sha256"]:
        raise _fail(path, "is not the tokenizer the shards were encoded with (its sha256 differs from "
                          f"{MANIFEST}'s tokenizer_sha256)", "restore this folder's own tokenizer.json, or "
                          "run `fromzero prepare` again to encode the corpus with this one")
    vocab = Tokenizer.load(path).vocab_size
    if vocab != manifest["vocab_size"]:
        raise _fail(path, f"has {vocab} tokens but {MANIFEST} says vocab_size {manifest['vocab_size']}")


def _shard_path(directory: Path, manifest_path: Path, where: str, file: Any) -> Path:
    """The shard's path; ``file`` must be a relative POSIX path that stays inside the folder."""
    pure = PurePosixPath(file) if isinstance(file, str) and file and "\\" not in file else None
    if pure is None or pure.is_absolute() or ".." in pure.parts or ":" in pure.parts[0]:
        raise _fail(manifest_path, f"{where}.file {file!r} is not a relative path inside the folder")
    return directory / pure


def _open_shard(path: Path, dtype: np.dtype, tokens: int, sha256: str, verify: str) -> np.ndarray:
    """One shard as a read-only memmap (an empty array for 0 tokens: mmap cannot map 0 bytes), checked
    against the manifest: byte size, and with ``verify="sha256"`` its content hash."""
    if not path.is_file():
        raise _fail(path, f"missing (listed in {MANIFEST})")
    size, expected = path.stat().st_size, tokens * dtype.itemsize
    if size != expected:
        raise _fail(path, f"{size} bytes but {MANIFEST} lists {tokens} {dtype.name} tokens ({expected} bytes): "
                          "the shard is truncated or corrupt")
    if verify == "sha256" and sha256_file(path) != sha256:
        raise _fail(path, f"sha256 differs from {MANIFEST}'s: the shard is corrupt")
    if tokens == 0:
        empty = np.empty(0, dtype=dtype)
        empty.flags.writeable = False
        return empty
    return np.memmap(path, dtype=dtype, mode="r")


def _open_split(directory: Path, manifest: dict[str, Any], split: str, dtype: np.dtype,
                verify: str) -> ShardedTokens:
    manifest_path = directory / MANIFEST
    parts = []
    for i, entry in enumerate(manifest["shards"][split]):
        path = _shard_path(directory, manifest_path, f"shards.{split}[{i}]", entry["file"])
        parts.append(_open_shard(path, dtype, entry["tokens"], entry["sha256"], verify))
    stream = ShardedTokens(parts, dtype)
    if len(stream) != manifest[f"{split}_tokens"]:
        raise _fail(manifest_path, f"the {split} shards hold {len(stream)} tokens but {split}_tokens is "
                                   f"{manifest[f'{split}_tokens']}")
    return stream


def open_manifest(directory: str | Path, verify: str = "sha256"
                  ) -> tuple[ShardedTokens, ShardedTokens, dict[str, Any]]:
    """(train tokens, val tokens, meta) of a format-2 ``fromzero prepare`` folder, every shard memmapped.

    Checks the manifest (kind, version, keys, a dtype that holds vocab_size ids, shard paths inside the
    folder, per-split token sums), the tokenizer (sha256 and vocab size) and each shard's byte size.
    ``verify="sha256"`` also hashes every shard: it reads the whole corpus once (about 1 s per GB on
    one core) before training starts; ``verify="size"`` skips that and trusts the sizes. Every
    failure is a one-line :class:`DataError` naming the file. ``meta`` is the manifest itself
    (dtype, vocab_size, train_tokens, val_tokens, tokenizer_kind, format_version, shards, ...).
    """
    if verify not in ("sha256", "size"):
        raise ValueError(f"verify must be 'sha256' or 'size', got {verify!r}")
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        if (directory / PREPARE_STATE).exists():
            raise DataError(f"{directory}: incomplete (prepare was interrupted); {_AGAIN} to continue")
        raise DataError(f"{manifest_path}: missing; run `fromzero prepare` to create it")
    manifest = _read_manifest(manifest_path)
    dtype = _token_dtype(manifest_path, manifest)
    _check_tokenizer(directory, manifest)
    train = _open_split(directory, manifest, "train", dtype, verify)
    val = _open_split(directory, manifest, "val", dtype, verify)
    return train, val, dict(manifest)
