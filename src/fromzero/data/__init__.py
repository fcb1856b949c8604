"""Data: raw text -> documents -> tokenizer -> token shards -> batches.

The package imports only ``fromzero.config``, ``errors`` and ``atomic``
plus numpy, torch, tokenizers, pyarrow and datasketch (and ``progress`` for its loops).
Names are imported lazily, so ``fromzero prepare`` and its worker processes
load neither torch nor the batchers they do not use.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Document": "corpus",
    "iter_documents": "corpus",
    "resolve_input": "corpus",
    "RandomWindows": "loader",
    "sequential_windows": "loader",
    "ShardInfo": "shards",
    "load_shards": "shards",
    "prepare_corpus": "shards",
    "Tokenizer": "tokenizers",
    "TokenizerConfig": "tokenizers",
    "dtype_for_vocab": "tokenizers",
    "train_tokenizer": "tokenizers",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'fromzero.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"fromzero.data.{_HOMES[name]}"), name)
