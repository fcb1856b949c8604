"""BERT pretraining batches: dynamic masking of NSP pairs (or single windows) of a token stream.

Devlin et al. 2018, https://arxiv.org/abs/1810.04805, and the reference data
pipeline ``create_pretraining_data.py`` of google-research/bert.

Masking (:func:`mask_tokens`) selects exactly ``round(mask_prob * n)`` of a
row's ``n`` maskable tokens (at least one), as the reference does, rather
than flipping a coin per token as Hugging Face's collator does: every row
gets predictions and the loss weight per row is fixed. Each selected token
becomes ``[MASK]`` (80%), a random non-special token (10%) or stays (10%),
decided per token. Whole-word masking selects words, in random order,
skipping a word that would overshoot the count (the reference's rule).
Word boundaries come from :mod:`fromzero.data.word_segmentation`, pairs from
:mod:`fromzero.data.nsp_pairs`; the loss is :class:`fromzero.objectives.MaskedLM`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from fromzero.config import field, require
from fromzero.data.loader import IGNORE_INDEX, batch_seed
from fromzero.data.nsp_pairs import IS_NEXT, NOT_NEXT, nsp_spans, pack_pair
from fromzero.data.token_shards import ShardedTokens, as_token_stream
from fromzero.errors import DataError


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


class MaskedLMBatches:
    """BERT training batches; ``batch(step, micro)`` is a pure function of (seed, step, micro).

    Rows are NSP pairs (:func:`nsp_pair`) or, without NSP, ``[CLS] A [SEP]`` with A a window of the
    stream (it may cross documents; separators stay in as never-masked tokens, like RoBERTa's
    FULL-SENTENCES). ``word_starts`` (bool, parallel to ``tokens``) marks word beginnings for whole-word
    masking (:func:`wordpiece_word_starts`, :func:`chinese_word_starts`).
    """

    def __init__(self, tokens: np.ndarray | ShardedTokens, doc_starts: np.ndarray | None = None, *, seq_len: int,
                 batch_size: int, seed: int, cfg: MaskedLMConfig, cls_id: int, sep_id: int, pad_id: int, mask_id: int,
                 vocab_size: int, special_ids: Collection[int] = (), eos_id: int | None = None,
                 word_starts: np.ndarray | None = None) -> None:
        if seq_len < 5 or batch_size < 1:
            raise ValueError(f"need seq_len >= 5 and batch_size >= 1, got {seq_len} and {batch_size}")
        self.tokens = as_token_stream(tokens)  # shards stay memmapped: rows read only their windows
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
