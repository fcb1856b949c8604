"""Next-sentence-prediction pairs for BERT pretraining, sampled from a token stream of documents.

Devlin et al. 2018, https://arxiv.org/abs/1810.04805, and the reference data pipeline
``create_pretraining_data.py`` of google-research/bert. Labels follow BERT and Hugging Face:
0 = B follows A, 1 = B is random.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fromzero.data.token_shards import ShardedTokens, as_token_stream, token_chunks
from fromzero.errors import DataError

IS_NEXT, NOT_NEXT = 0, 1


def documents_from_stream(tokens: np.ndarray | ShardedTokens, eos_id: int) -> np.ndarray:
    """Start offsets of the documents of a stream that joins them with ``eos_id`` (empty ones dropped).

    The stream is scanned chunk by chunk (:func:`token_chunks`), so a sharded stream is never loaded whole."""
    tokens = as_token_stream(tokens)
    after_eos = [np.flatnonzero(chunk == eos_id) + (offset + 1) for offset, chunk in token_chunks(tokens)]
    starts = np.concatenate([np.zeros(1, np.int64), *after_eos])
    starts = starts[starts < len(tokens)]
    starts = starts[tokens[starts] != eos_id]
    if len(starts) == 0:
        raise DataError("the token stream holds no document (only end-of-text tokens)")
    return starts


def _doc_bounds(tokens: np.ndarray, doc_starts: np.ndarray, d: int, eos_id: int | None) -> tuple[int, int]:
    """[start, end) of document d without its leading/trailing separator tokens."""
    start = int(doc_starts[d])
    end = int(doc_starts[d + 1]) if d + 1 < len(doc_starts) else len(tokens)
    if eos_id is not None:
        while end > start and tokens[end - 1] == eos_id:
            end -= 1
        while start < end and tokens[start] == eos_id:
            start += 1
    return start, end


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: np.random.Generator) -> None:
    """BERT's truncate_seq_pair on spans [start, length]: trim the longer one, from front or back at random."""
    while a[1] + b[1] > max_tokens:
        longer = a if a[1] > b[1] else b
        if rng.random() < 0.5:
            longer[0] += 1
        longer[1] -= 1


def _far_segment(a_start: int, a_len: int, b_len: int, bounds: tuple[int, int], gap: int,
                 rng: np.random.Generator) -> int:
    """Start of a b_len segment inside ``bounds`` at least ``gap`` tokens away from segment A."""
    lo, hi = bounds
    left = max(0, a_start - gap - b_len - lo + 1)  # starts lo .. a_start - gap - b_len
    first_right = a_start + a_len + gap
    right = max(0, hi - b_len - first_right + 1)  # starts first_right .. hi - b_len
    if left + right == 0:
        raise DataError(f"a single document of {hi - lo} tokens is too short for NSP negatives at seq_len={gap}; "
                        "use more documents or a longer text")
    k = int(rng.integers(left + right))
    return lo + k if k < left else first_right + k - left


def nsp_spans(tokens: np.ndarray, doc_starts: np.ndarray, max_len: int, rng: np.random.Generator, *,
              short_seq_prob: float = 0.1, eos_id: int | None = None) -> tuple[int, int, int, int, bool]:
    """(a_start, a_len, b_start, b_len, is_next): stream offsets of an NSP pair; see :func:`nsp_pair`."""
    n, max_tokens = len(tokens), max_len - 3
    if max_tokens < 2:
        raise ValueError(f"max_len must be >= 5 for [CLS] A [SEP] B [SEP], got {max_len}")
    target = max_tokens if rng.random() >= short_seq_prob else int(rng.integers(2, max_tokens + 1))
    first = int(doc_starts[0])
    for _ in range(32):
        pos = int(rng.integers(first, n))
        d = int(np.searchsorted(doc_starts, pos, side="right")) - 1
        lo, hi = _doc_bounds(tokens, doc_starts, d, eos_id)
        if hi > lo:
            break
    else:
        raise DataError("could not find a non-empty document for an NSP pair")
    start = max(lo, min(pos, hi - target))  # slide back so the chunk fills target tokens when the doc allows
    chunk = min(target, hi - start)
    a_len = int(rng.integers(1, chunk)) if chunk >= 2 else 1
    is_next = chunk >= 2 and rng.random() < 0.5
    if is_next:
        a, b = [start, a_len], [start + a_len, chunk - a_len]
    else:
        a, b = [start, a_len], [0, target - a_len]
        raw_lo = int(doc_starts[d])
        raw_hi = int(doc_starts[d + 1]) if d + 1 < len(doc_starts) else n
        outside = (n - first) - (raw_hi - raw_lo)
        if len(doc_starts) == 1 or outside <= 0:
            b[0] = _far_segment(start, a_len, b[1], (lo, hi), max_len, rng)
        else:
            for _ in range(32):  # a uniform token of another document
                q = first + int(rng.integers(outside))
                q += raw_hi - raw_lo if q >= raw_lo else 0
                lo2, hi2 = _doc_bounds(tokens, doc_starts, int(np.searchsorted(doc_starts, q, "right")) - 1, eos_id)
                if hi2 > lo2:
                    break
            b[0] = max(lo2, min(q, hi2 - b[1]))
            b[1] = min(b[1], hi2 - b[0])
    _truncate_pair(a, b, max_tokens, rng)
    return a[0], a[1], b[0], b[1], bool(is_next)


def nsp_pair(tokens: np.ndarray, doc_starts: np.ndarray, max_len: int, rng: np.random.Generator, *,
             short_seq_prob: float = 0.1, eos_id: int | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """A next-sentence-prediction pair ``(ids_a, ids_b, is_next)`` from a token stream of documents.

    A chunk of ``target = max_len - 3`` tokens (with probability ``short_seq_prob`` a random length in
    [2, target]) starts at a uniform position inside one document; A is its first 1..chunk-1 tokens. With
    p = 0.5, B is the rest of the chunk (the true continuation); otherwise B is ``target - len(A)`` tokens
    from a uniformly random position in another document, or, when the stream is a single document,
    from a part of it at least ``max_len`` tokens away from A (so never A's neighbourhood); a one-token
    document can only give a random B. Segments are token spans, so A/B may split a sentence. Finally the
    pair is truncated as BERT's truncate_seq_pair does, so ``[CLS] A [SEP] B [SEP]`` fits ``max_len``.
    Documents never include ``eos_id`` separators. ``doc_starts``: sorted document start offsets.
    """
    a_start, a_len, b_start, b_len, is_next = nsp_spans(tokens, doc_starts, max_len, rng,
                                                        short_seq_prob=short_seq_prob, eos_id=eos_id)
    return tokens[a_start:a_start + a_len], tokens[b_start:b_start + b_len], is_next


def pack_pair(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray | None, cls_id: int, sep_id: int,
              pad_id: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[CLS] A [SEP] B [SEP] [PAD]...`` -> (input_ids, token_type_ids, attention_mask), each (max_len,) long.

    Segment ids are 0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]`` and 0 for padding; the attention mask is
    1 for real tokens. ``b=None`` packs a single segment ``[CLS] A [SEP]``.
    """
    a = torch.as_tensor(np.asarray(a, dtype=np.int64))
    b = torch.as_tensor(np.asarray(b if b is not None else [], dtype=np.int64))
    n_a, n_b = len(a) + 2, len(b) + (1 if len(b) else 0)
    if n_a + n_b > max_len:
        raise ValueError(f"pair of {len(a)} + {len(b)} tokens does not fit max_len={max_len} with specials")
    ids = torch.full((max_len,), pad_id, dtype=torch.long)
    ids[0], ids[1:n_a - 1], ids[n_a - 1] = cls_id, a, sep_id
    types = torch.zeros(max_len, dtype=torch.long)
    if len(b):
        ids[n_a:n_a + n_b - 1], ids[n_a + n_b - 1] = b, sep_id
        types[n_a:n_a + n_b] = 1
    mask = torch.zeros(max_len, dtype=torch.long)
    mask[:n_a + n_b] = 1
    return ids, types, mask
