"""BERT pretraining: masked language modelling (MLM) + next-sentence prediction (NSP).

Devlin et al. 2018, https://arxiv.org/abs/1810.04805, and the reference data
pipeline ``create_pretraining_data.py`` of google-research/bert:

    L = L_mlm + L_nsp
    L_mlm = -(1/N) sum_{i masked} log p(x_i | x_corrupted)       N = masked tokens
    L_nsp = -(1/B) sum_b log p(is_next_b | [CLS]_b)

Masking (:func:`mask_tokens`) selects exactly ``round(mask_prob * n)`` of a
row's ``n`` maskable tokens (at least one), as the reference does, rather
than flipping a coin per token as Hugging Face's collator does: every row
gets predictions and the loss weight per row is fixed. Each selected token
becomes ``[MASK]`` (80%), a random non-special token (10%) or stays (10%),
decided per token. Whole-word masking selects words, in random order,
skipping a word that would overshoot the count (the reference's rule).

NSP labels follow BERT and Hugging Face: 0 = B follows A, 1 = B is random.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fromzero.config import field, require
from fromzero.data.loader import batch_seed
from fromzero.errors import DataError
from fromzero.objectives.base import ObjectiveOutput

IGNORE_INDEX = -100
IS_NEXT, NOT_NEXT = 0, 1


@dataclass(frozen=True)
class MaskedLMConfig:
    """How BERT batches are corrupted (the ``objective:`` section of a masked-LM recipe)."""

    mask_prob: float = field(0.15, help="fraction of maskable tokens selected for prediction")
    mask_token_prob: float = field(0.8, help="of the selected, fraction replaced by [MASK]")
    random_token_prob: float = field(0.1, help="of the selected, fraction replaced by a random token (rest kept)")
    whole_word: bool = field(False, help="select whole words: all tokens of a chosen word are masked together")
    segmenter: Literal["wordpiece", "jieba"] = field(
        "wordpiece", help="word boundaries for whole_word: WordPiece '##' pieces, or jieba for Chinese text")
    nsp: bool = field(True, help="build [CLS] A [SEP] B [SEP] pairs and train next-sentence prediction")
    short_seq_prob: float = field(0.1, help="probability of a shorter random target length (as in BERT)")

    def __post_init__(self) -> None:
        require(0.0 < self.mask_prob < 1.0, "mask_prob", f"must be in (0, 1), got {self.mask_prob}")
        for key in ("mask_token_prob", "random_token_prob", "short_seq_prob"):
            value = getattr(self, key)
            require(0.0 <= value <= 1.0, key, f"must be in [0, 1], got {value}")
        total = self.mask_token_prob + self.random_token_prob
        require(total <= 1.0, "random_token_prob", f"mask_token_prob + random_token_prob must be <= 1, got {total}")


# ---------------------------------------------------------------------------------------------- masking


def _select_tokens(candidates: torch.Tensor, k: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Exactly k[b] uniformly random candidate positions per row: rank random scores, keep the k lowest."""
    scores = torch.rand(candidates.shape, generator=gen).masked_fill(~candidates, 2.0)  # non-candidates rank last
    order = scores.argsort(dim=1)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
    return rank < k[:, None]


def _select_words(word_ids: torch.Tensor, k: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Whole words in random order, skipping any that would push a row past k[b] tokens (BERT's rule)."""
    selected = torch.zeros(word_ids.shape, dtype=torch.bool)
    for row in range(word_ids.shape[0]):
        valid = word_ids[row] >= 0
        words, inverse, counts = torch.unique(word_ids[row][valid], return_inverse=True, return_counts=True)
        chosen = torch.zeros(len(words), dtype=torch.bool)
        total, target, sizes = 0, int(k[row]), counts.tolist()
        for w in torch.randperm(len(words), generator=gen).tolist():
            if total + sizes[w] <= target:
                chosen[w] = True
                total += sizes[w]
                if total == target:
                    break
        selected[row, valid] = chosen[inverse]
    return selected


def mask_tokens(
    input_ids: torch.Tensor, special_mask: torch.Tensor, cfg: MaskedLMConfig, generator: torch.Generator,
    mask_id: int, vocab_size: int, word_ids: torch.Tensor | None = None, *, special_ids: Collection[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's dynamic masking: ``(inputs, labels)``, both (B, T) long; labels are -100 where not selected.

    special_mask (B, T) bool is True for tokens that must never be selected ([CLS], [SEP], padding ...).
    Each row selects exactly ``max(1, round(mask_prob * n))`` of its ``n`` maskable tokens (none if n = 0).
    word_ids (B, T): word index per token (-1 for specials); if given, whole words are selected.
    Random replacements are uniform over ids in ``range(vocab_size)`` minus ``special_ids``.
    """
    candidates = ~special_mask.bool()
    if word_ids is not None:
        candidates &= word_ids >= 0
    n = candidates.sum(dim=1)
    k = torch.round(n.double() * cfg.mask_prob).long().clamp(min=1).minimum(n)
    if word_ids is None:
        selected = _select_tokens(candidates, k, generator)
    else:
        selected = _select_words(word_ids.masked_fill(~candidates, -1), k, generator)
    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    r = torch.rand(input_ids.shape, generator=generator)
    to_mask = selected & (r < cfg.mask_token_prob)
    to_random = selected & (r >= cfg.mask_token_prob) & (r < cfg.mask_token_prob + cfg.random_token_prob)
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[[i for i in special_ids if 0 <= i < vocab_size]] = False
    pool = allowed.nonzero().squeeze(1)
    random_ids = pool[torch.randint(len(pool), input_ids.shape, generator=generator)]
    inputs = input_ids.masked_fill(to_mask, mask_id)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels


# ------------------------------------------------------------------------------------------- whole words


def wordpiece_word_ids(tokens: Sequence[str], specials: Collection[str] = ("[CLS]", "[SEP]", "[PAD]", "[MASK]")
                       ) -> list[int]:
    """Word index per WordPiece token: a ``##`` token continues the previous word; specials get -1."""
    out: list[int] = []
    word = -1
    for i, tok in enumerate(tokens):
        if tok in specials:
            out.append(-1)
            continue
        if not (tok.startswith("##") and i > 0 and out[-1] >= 0):
            word += 1
        out.append(word)
    return out


def chinese_word_ids(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Word index per token of ``text``, words from the jieba segmenter (accurate mode, HMM for new words).

    ``offsets`` are each token's (start, end) characters in ``text`` (Hugging Face ``Encoding.offsets``);
    tokens with empty offsets (specials) get -1. A token belongs to the jieba word holding its first
    character; a token that straddles a word boundary joins the words it covers into one group, so a
    group is always a whole number of tokens. Non-Chinese runs are words too (jieba keeps "hello" whole).
    This is Chinese whole-word masking (Cui et al. 2019, https://arxiv.org/abs/1906.08101, used LTP;
    jieba is the segmenter here). Requires ``pip install jieba``.
    """
    try:
        import jieba
    except ImportError:
        raise DataError("Chinese whole-word masking needs the jieba segmenter: pip install jieba") from None
    jieba.setLogLevel(logging.WARNING)  # jieba logs its dictionary loading at DEBUG to stderr
    starts = np.array([start for _, start, _ in jieba.tokenize(text)] or [0])
    out: list[int] = []
    group, reach = -1, -1  # reach: the last jieba word covered by the current group
    for start, end in offsets:
        if end <= start:
            out.append(-1)
            continue
        first = int(np.searchsorted(starts, start, side="right")) - 1
        last = int(np.searchsorted(starts, end - 1, side="right")) - 1
        if first > reach:
            group += 1
        reach = max(reach, last)
        out.append(group)
    return out


def chinese_word_starts(tokens: np.ndarray, vocab: Sequence[str], special_ids: Collection[int] = ()) -> np.ndarray:
    """Word starts of a token-id stream of Chinese text, segmented by jieba (see :func:`chinese_word_ids`).

    The text is rebuilt from the token strings (``vocab``: tokens by id; WordPiece ``##`` marks dropped;
    for WordPiece and char vocabularies, not byte-level BPE), with a line break for each special token.
    """
    special = set(special_ids)
    pieces = [t[2:] if t.startswith("##") else t for t in vocab]
    parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    pos = 0
    for i in np.asarray(tokens).tolist():
        piece = "\n" if i in special else pieces[i]
        offsets.append((pos, pos) if i in special else (pos, pos + len(piece)))
        parts.append(piece)
        pos += len(piece)
    return word_starts_from_word_ids(chinese_word_ids("".join(parts), offsets))


def word_starts_from_word_ids(word_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Bool array: True where a token begins a new word (its word id differs from the previous token's)."""
    ids = np.asarray(word_ids)
    starts = np.ones(len(ids), dtype=bool)
    starts[1:] = ids[1:] != ids[:-1]
    return starts


def wordpiece_word_starts(tokens: np.ndarray, vocab: Sequence[str]) -> np.ndarray:
    """Word starts of a token-id stream for a WordPiece vocabulary (tokens by id): not a ``##`` token."""
    continues = np.array([t.startswith("##") for t in vocab], dtype=bool)
    return ~continues[np.asarray(tokens)]


# ---------------------------------------------------------------------------------------------- NSP pairs


def documents_from_stream(tokens: np.ndarray, eos_id: int) -> np.ndarray:
    """Start offsets of the documents of a stream that joins them with ``eos_id`` (empty ones dropped)."""
    tokens = np.asarray(tokens)
    starts = np.concatenate([[0], np.flatnonzero(tokens == eos_id) + 1])
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


# ----------------------------------------------------------------------------------------- batch source


class MaskedLMBatches:
    """BERT training batches; ``batch(step, micro)`` is a pure function of (seed, step, micro).

    Rows are NSP pairs (:func:`nsp_pair`) or, without NSP, ``[CLS] A [SEP]`` with A a window of the
    stream (it may cross documents; separators stay in as never-masked tokens, like RoBERTa's
    FULL-SENTENCES). ``word_starts`` (bool, parallel to ``tokens``) marks word beginnings for whole-word
    masking (:func:`wordpiece_word_starts`, :func:`chinese_word_starts`).
    """

    def __init__(self, tokens: np.ndarray, doc_starts: np.ndarray | None = None, *, seq_len: int, batch_size: int,
                 seed: int, cfg: MaskedLMConfig, cls_id: int, sep_id: int, pad_id: int, mask_id: int,
                 vocab_size: int, special_ids: Collection[int] = (), eos_id: int | None = None,
                 word_starts: np.ndarray | None = None) -> None:
        if seq_len < 5 or batch_size < 1:
            raise ValueError(f"need seq_len >= 5 and batch_size >= 1, got {seq_len} and {batch_size}")
        self.tokens = np.asarray(tokens)
        self.doc_starts = np.zeros(1, np.int64) if doc_starts is None else np.asarray(doc_starts, np.int64)
        if len(self.doc_starts) == 0 or np.any(np.diff(self.doc_starts) <= 0) or self.doc_starts[-1] >= len(tokens):
            raise DataError("doc_starts must be increasing offsets inside the token stream")
        need = 4 * seq_len if cfg.nsp and len(self.doc_starts) == 1 else seq_len
        if len(tokens) - self.doc_starts[0] < need:
            raise DataError(f"the training split has {len(tokens)} tokens but masked LM at seq_len={seq_len} "
                            f"needs at least {need}{' (one document, NSP)' if need > seq_len else ''}")
        if cfg.whole_word and (word_starts is None or len(word_starts) != len(tokens)):
            raise ValueError("whole_word masking needs word_starts, a bool array parallel to tokens")
        self.seq_len, self.batch_size, self.seed, self.cfg = seq_len, batch_size, seed, cfg
        self.cls_id, self.sep_id, self.pad_id, self.mask_id = cls_id, sep_id, pad_id, mask_id
        self.vocab_size, self.eos_id, self.word_starts = vocab_size, eos_id, word_starts
        extra = [i for i in (cls_id, sep_id, pad_id, mask_id, eos_id) if i is not None]
        self.special_ids = sorted(set(special_ids) | set(extra))

    def _row(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        cfg, t = self.cfg, self.tokens
        if cfg.nsp:
            a0, na, b0, nb, is_next = nsp_spans(t, self.doc_starts, self.seq_len, rng,
                                                short_seq_prob=cfg.short_seq_prob, eos_id=self.eos_id)
        else:
            longest = self.seq_len - 2
            na = longest if rng.random() >= cfg.short_seq_prob else int(rng.integers(1, longest + 1))
            a0, b0, nb, is_next = int(rng.integers(0, len(t) - na + 1)), 0, 0, False
        ids, types, mask = pack_pair(t[a0:a0 + na], t[b0:b0 + nb] if cfg.nsp else None,
                                     self.cls_id, self.sep_id, self.pad_id, self.seq_len)
        words = torch.full((self.seq_len,), -1, dtype=torch.long)
        if cfg.whole_word:
            wa = self._word_ids(a0, na)
            words[1:1 + na] = wa
            words[2 + na:2 + na + nb] = self._word_ids(b0, nb) + (int(wa.max()) + 1 if na else 0)
        return ids, types, mask, words, torch.tensor(IS_NEXT if is_next else NOT_NEXT)

    def _word_ids(self, start: int, length: int) -> torch.Tensor:
        starts = np.array(self.word_starts[start:start + length], dtype=bool)
        if length:
            starts[0] = True  # a window may begin mid-word: that part is a word of its own
        return torch.from_numpy(np.cumsum(starts) - 1)

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """``input_ids, token_type_ids, attention_mask, labels`` (B, T) and ``nsp_labels`` (B,) if NSP."""
        seed = batch_seed(self.seed, step, micro)
        rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
        rows = [self._row(rng) for _ in range(self.batch_size)]
        ids, types, mask, words, nsp = (torch.stack(x) for x in zip(*rows, strict=True))
        special = torch.isin(ids, torch.tensor(self.special_ids)) | (mask == 0)
        inputs, labels = mask_tokens(ids, special, self.cfg, gen, self.mask_id, self.vocab_size,
                                     words if self.cfg.whole_word else None, special_ids=self.special_ids)
        out = {"input_ids": inputs, "token_type_ids": types, "attention_mask": mask, "labels": labels}
        if self.cfg.nsp:
            out["nsp_labels"] = nsp
        return out


# ------------------------------------------------------------------------------------ objective + baselines


class MaskedLM:
    """MLM (+ NSP when the batch has ``nsp_labels``) loss for a model with BERT's heads.

    The MLM head runs only on the masked positions (hidden[labels != -100], about 15% of tokens), which
    saves most of the (N, V) vocabulary projection. weight = number of masked tokens (so NSP metrics,
    averaged over micro-batches, are weighted by them too). ``cfg`` is accepted for a uniform construction.
    """

    def __init__(self, cfg: MaskedLMConfig | None = None) -> None:
        self.cfg = cfg

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        hidden = model(batch["input_ids"], token_type_ids=batch.get("token_type_ids"),
                       attention_mask=batch.get("attention_mask"))  # (B, T, C)
        labels = batch["labels"]
        scored = labels != IGNORE_INDEX
        targets = labels[scored]  # (N,)
        logits = model.mlm_logits(hidden[scored])  # (N, V)
        n = int(targets.numel())
        mlm_loss = F.cross_entropy(logits.float(), targets) if n else hidden.sum() * 0.0
        loss = mlm_loss
        metrics = {"mlm_loss": mlm_loss.detach()}
        with torch.no_grad():
            metrics["mlm_accuracy"] = (logits.argmax(-1) == targets).float().sum() / max(n, 1)
        if "nsp_labels" in batch:
            nsp_logits = model.nsp_logits(model.pool(hidden))  # (B, 2)
            nsp_loss = F.cross_entropy(nsp_logits.float(), batch["nsp_labels"])
            loss = loss + nsp_loss
            metrics["nsp_loss"] = nsp_loss.detach()
            metrics["nsp_accuracy"] = (nsp_logits.argmax(-1) == batch["nsp_labels"]).float().mean().detach()
        metrics["loss"] = loss.detach()
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=n)


def most_frequent_token_accuracy(labels: torch.Tensor, token_counts: torch.Tensor | np.ndarray,
                                 exclude: Collection[int] = ()) -> float:
    """Accuracy of always predicting the most frequent token of ``token_counts`` (training frequencies,
    e.g. ``np.bincount(train_tokens)``), ids in ``exclude`` skipped, on the scored ``labels`` (!= -100)."""
    counts = torch.as_tensor(np.asarray(token_counts), dtype=torch.float64).clone()
    counts[[i for i in exclude if 0 <= i < len(counts)]] = -1
    top = int(counts.argmax())
    scored = labels[labels != IGNORE_INDEX]
    return float((scored == top).double().mean()) if scored.numel() else 0.0


def mlm_baseline(labels: torch.Tensor, train_token_counts: torch.Tensor | np.ndarray,
                 special_ids: Collection[int] = ()) -> float:
    """Masked-token accuracy of the most-frequent-token predictor (specials are never masked, so skipped)."""
    return most_frequent_token_accuracy(labels, train_token_counts, exclude=special_ids)


def nsp_baseline(nsp_labels: torch.Tensor) -> float:
    """NSP accuracy of the majority class: max(p, 1 - p) for p = share of true continuations (~0.5)."""
    p = float((nsp_labels == IS_NEXT).double().mean()) if nsp_labels.numel() else 0.5
    return max(p, 1.0 - p)
