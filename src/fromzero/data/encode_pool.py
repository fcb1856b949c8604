"""Analyse and encode batches of documents in worker processes, results back in submission order.

A worker does all the per-document work that needs no other document: the
empty and quality checks, the content key (normalise + hash), the MinHash
band keys when near-dedup is on, and the token ids. The main process then
takes the order-dependent decisions (has this key or band been seen?) in
stream order, so the output never depends on the number of workers.

At most ``2 * workers`` batches are in flight, so memory is bounded by the
batch size however fast the reader is (``Pool.imap`` would read the whole
corpus ahead). Each worker runs one single-threaded tokenizer; with one
worker everything runs in this process and the tokenizer uses its own
threads. Workers are spawned (not forked) and import neither torch nor the
rest of the package's heavy modules.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fromzero.data.dedup import NearDedup, document_key
from fromzero.data.quality_filters import QualityFilter
from fromzero.data.tokenizers import fast_encode_batch


@dataclass
class BatchResult:
    """Per document of a batch: drop reason found without other documents, content key, band keys, ids."""

    reasons: list[str | None]
    keys: list[int]
    bands: list[list[int] | None]
    ids: np.ndarray  # every encoded document's ids, concatenated
    lengths: np.ndarray  # (n_docs,) ids per document; 0 for documents not encoded


class DocumentWork:
    """What a worker does to a batch; built from plain values so it can be sent to a spawned process."""

    def __init__(self, tokenizer_json: str, dtype: str, quality: dict[str, Any], near: dict[str, Any] | None,
                 threads: bool) -> None:
        if not threads:  # one core per worker process; the pool gives the parallelism
            os.environ["RAYON_NUM_THREADS"] = "1"
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        import tokenizers

        self.tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
        self._encode = fast_encode_batch(self.tokenizer)  # ids only: no offsets to track
        self.dtype = dtype
        self.quality = QualityFilter.from_options(quality)
        self.near = NearDedup(**near) if near else None

    def reason(self, text: str) -> str | None:
        if not text.strip():
            return "empty"
        return self.quality.check(text) if self.quality.active() else None

    def __call__(self, texts: list[str], encode: bool) -> BatchResult:
        reasons = [self.reason(t) for t in texts]
        keys = [document_key(t) for t in texts]
        bands = [self.near.band_keys(self.near.minhash(t)) if self.near and not r else None
                 for t, r in zip(texts, reasons, strict=True)]
        todo = [t for t, r in zip(texts, reasons, strict=True) if not r] if encode else []
        encodings = self._encode(todo, add_special_tokens=False) if todo else []
        ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=self.dtype,
                          count=sum(len(e.ids) for e in encodings))
        lengths = np.zeros(len(texts), dtype=np.int64)
        if encodings:
            lengths[[i for i, r in enumerate(reasons) if not r]] = [len(e.ids) for e in encodings]
        return BatchResult(reasons, keys, bands, ids, lengths)


_work: DocumentWork | None = None  # the worker process's DocumentWork


def _init_worker(args: tuple) -> None:
    global _work
    _work = DocumentWork(*args, threads=False)


def _run_in_worker(texts: list[str], encode: bool) -> BatchResult:
    return _work(texts, encode)


class DocumentPool:
    """``pool.map(batches)`` yields ``(batch, BatchResult)`` in input order; a context manager."""

    def __init__(self, tokenizer_json: str, dtype: np.dtype, quality: dict[str, Any], near: dict[str, Any] | None,
                 workers: int) -> None:
        self._args = (tokenizer_json, np.dtype(dtype).str, quality, near)
        self.workers = workers
        self._pool = None
        self._local = DocumentWork(*self._args, threads=True) if workers == 1 else None

    def __enter__(self) -> DocumentPool:
        if self.workers > 1:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(self._args,))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.terminate()  # on error or Ctrl-C too: no orphaned workers
            self._pool.join()
            self._pool = None

    def map(self, batches: Iterable[tuple[Any, list[str], bool]]) -> Iterator[tuple[Any, BatchResult]]:
        """For each ``(tag, texts, encode)``: yields ``(tag, result)`` in input order."""
        if self._pool is None:
            for tag, texts, encode in batches:
                yield tag, self._local(texts, encode)
            return
        pending: deque = deque()
        for tag, texts, encode in batches:
            pending.append((tag, self._pool.apply_async(_run_in_worker, (texts, encode))))
            if len(pending) >= 2 * self.workers:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()
