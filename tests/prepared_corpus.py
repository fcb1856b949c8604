"""Small generated corpora for the data tests (distinct documents of varied length), and their error helper."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from fromzero.data.corpus import iter_documents
from fromzero.errors import DataError

WORDS = [
    "the", "of", "and", "to", "a", "in", "that", "it", "was", "her", "his", "she", "he", "you", "not", "be", "had",
    "with", "for", "as", "but", "at", "on", "my", "by", "have", "which", "all", "this", "they", "were", "so", "from",
    "me", "would", "no", "been", "what", "one", "if", "said", "mr",
]


def make_documents(n: int, seed: int = 0, min_words: int = 3, max_words: int = 120) -> list[str]:
    """``n`` distinct documents (each starts with its number), lengths spread over [min_words, max_words]."""
    rng = random.Random(seed)
    return [f"doc{i} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words)))
            for i in range(n)]


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def split_files(folder: Path, texts: list[str], n_files: int) -> list[Path]:
    """The documents written in order over ``n_files`` JSONL files ``part-0.jsonl`` ..."""
    per = -(-len(texts) // n_files)
    return [write_jsonl(folder / f"part-{i}.jsonl", texts[i * per : (i + 1) * per]) for i in range(n_files)]


def read_split(folder: Path, split: str) -> np.ndarray:
    """The concatenation of a prepared folder's shards of one split, read independently of the loader."""
    manifest = json.loads((folder / "manifest.json").read_text())
    dtype = np.dtype(manifest["dtype"]).newbyteorder("<")
    parts = [np.fromfile(folder / e["file"], dtype=dtype) for e in manifest["shards"][split]]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` (the manifest and report included) by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def corpus_error(inputs: list[str | Path], **kwargs: object) -> str:
    """The one-line DataError message ``iter_documents(inputs, **kwargs)`` raises."""
    with pytest.raises(DataError) as info:
        list(iter_documents(inputs, **kwargs))
    message = str(info.value)
    assert "\n" not in message
    return message
