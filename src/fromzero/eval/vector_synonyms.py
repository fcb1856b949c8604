"""Synonyms for EDA (``data/augment_text.py``) from word vectors: each word's nearest neighbours by cosine.

Nearest neighbours in a word2vec space are words used in the same contexts: true synonyms, but also
antonyms and co-hyponyms ("good" -> "bad", "monday" -> "tuesday"), so this is a weaker source than
WordNet; ``min_similarity`` keeps only close neighbours. Works on any (V, D) matrix and word list, and on a
fromzero word2vec run (``fromzero pretrain`` with a word2vec model) through :func:`word2vec_synonyms`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from fromzero.errors import ConfigError
from fromzero.runs import load_run


def neighbour_synonyms(vectors: torch.Tensor, words: Sequence[str], queries: Iterable[str], k: int = 5,
                       min_similarity: float = 0.5) -> dict[str, list[str]]:
    """``{query: up to k nearest other words with cosine >= min_similarity}`` for each query in ``words``
    (rows of ``vectors`` (V, D)); a query outside the vocabulary or without a close neighbour is left out."""
    index = {w: i for i, w in enumerate(words)}
    ids = sorted({index[q] for q in queries if q in index})
    if not ids:
        return {}
    unit = F.normalize(vectors.detach().float(), dim=-1)  # (V, D)
    sims = unit[ids] @ unit.T  # (Q, V)
    sims[torch.arange(len(ids)), ids] = -float("inf")  # a word is not its own synonym
    values, top = sims.topk(min(k, sims.shape[1] - 1), dim=-1)  # (Q, k) each
    out = {}
    for i, row_values, row_ids in zip(ids, values.tolist(), top.tolist(), strict=True):
        close = [words[j] for s, j in zip(row_values, row_ids, strict=True) if s >= min_similarity]
        if close:
            out[words[i]] = close
    return out


def word2vec_synonyms(run_dir: str | Path, queries: Iterable[str], k: int = 5,
                      min_similarity: float = 0.5) -> dict[str, list[str]]:
    """:func:`neighbour_synonyms` over a word2vec run's vectors and its tokenizer's vocabulary (queries are
    looked up as given and lower-cased)."""
    run = load_run(run_dir)
    if run.tokenizer is None or not hasattr(run.model, "word_vectors"):
        raise ConfigError(f"--word-vectors: {run_dir} is not a word2vec run; pretrain one with a word2vec model "
                          "or give --synonyms FILE")
    vectors = run.model.word_vectors()  # (V, D)
    words = [run.tokenizer.id_to_token(i) or "" for i in range(vectors.shape[0])]
    queries = {q for w in queries for q in (w, w.lower())}
    return neighbour_synonyms(vectors, words, queries, k, min_similarity)
