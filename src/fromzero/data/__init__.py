"""Data: raw text -> documents -> tokenizer -> token shards -> batches.

The package imports only ``fromzero.config``, ``errors`` and ``atomic``
plus numpy, torch and tokenizers (and ``progress`` for its loops).
"""

from fromzero.data.corpus import Document, iter_documents, resolve_input
from fromzero.data.loader import RandomWindows, sequential_windows
from fromzero.data.shards import ShardInfo, load_shards, prepare_corpus
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig, dtype_for_vocab, train_tokenizer

__all__ = [
    "Document",
    "RandomWindows",
    "ShardInfo",
    "Tokenizer",
    "TokenizerConfig",
    "dtype_for_vocab",
    "iter_documents",
    "load_shards",
    "prepare_corpus",
    "resolve_input",
    "sequential_windows",
    "train_tokenizer",
]
