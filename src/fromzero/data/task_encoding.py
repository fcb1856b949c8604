"""Task examples -> token features -> padded batches the Trainer can draw from.

Framing (:class:`Framing`) is how a family marks segments, read from the
tokenizer's special tokens, so no model family is named here:

    BERT-style vocabulary ([CLS], [SEP])   [CLS] a [SEP] (b [SEP])    token types 0 for a, 1 for b
    otherwise (GPT, T5)                    a <eos> (b <eos>)          last-token pooling reads the final <eos>

Features are plain lists (variable length). :class:`TaskBatches` pads each
batch only to its longest row (``attention_mask`` marks real tokens; labels
of padding are -100) and is a pure function of (seed, step, micro), like
every batch source: epoch e visits the examples in a permutation seeded by
(seed, e), so resuming needs only the step.

Over-long inputs follow the policy of ``task_data`` (``truncate`` counting in
:class:`TruncationStats`, or ``error``): tagging cuts at a word boundary so
no word is half-labelled; QA cuts the context, and a question whose answer
falls outside it gets start/end -100 (skipped by the loss, counted in
``stats.answers_lost``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fromzero.data.labels import LabelVocab
from fromzero.data.loader import IGNORE_INDEX, batch_seed
from fromzero.data.task_data import QAExample, TaggedSentence, TextExample
from fromzero.data.tokenizers import Tokenizer
from fromzero.data.truncation import TruncationPolicy, TruncationStats, fit_length, fit_pair
from fromzero.errors import ConfigError, DataError

Feature = dict[str, Any]


@dataclass(frozen=True)
class Framing:
    """Special tokens around one or two segments: ``prefix a between b suffix`` (``a suffix`` for one)."""

    prefix: tuple[int, ...] = ()
    between: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()
    pad_id: int = 0
    token_types: bool = False  # emit token_type_ids (BERT segments)

    @classmethod
    def for_tokenizer(cls, tokenizer: Tokenizer) -> Framing:
        """BERT framing if the vocabulary has [CLS] and [SEP], else segments closed by the end-of-text token."""
        if tokenizer.pad_id is None:
            raise DataError("the tokenizer has no padding token (<pad> or [PAD]); add one to its special tokens")
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        if cls_id is not None and sep_id is not None:
            return cls((cls_id,), (sep_id,), (sep_id,), tokenizer.pad_id, True)
        if tokenizer.eos_id is None:
            raise DataError("the tokenizer has no end-of-text token (<|endoftext|>, </s>, <eos>) to close segments")
        return cls((), (tokenizer.eos_id,), (tokenizer.eos_id,), tokenizer.pad_id, False)

    def n_special(self, pair: bool = False) -> int:
        """Special tokens added around one segment, or around a pair."""
        return len(self.prefix) + len(self.suffix) + (len(self.between) if pair else 0)

    def frame(self, a: Sequence[int], b: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """(input_ids, token_type_ids) of the framed segment(s)."""
        first = [*self.prefix, *a, *(self.between if b is not None else self.suffix)]
        second = [*b, *self.suffix] if b is not None else []
        return first + second, [0] * len(first) + [1] * len(second)

    def feature(self, ids: list[int], types: list[int]) -> Feature:
        """The model inputs of a framed sequence: ``token_type_ids`` only for BERT framing."""
        return {"input_ids": ids, "token_type_ids": types} if self.token_types else {"input_ids": ids}


def _budget(max_len: int, framing: Framing, pair: bool) -> int:
    budget = max_len - framing.n_special(pair)
    if budget < 1:
        raise ConfigError(f"data.max_len: {max_len} leaves no room for text after {framing.n_special(pair)} "
                          "special tokens; raise it")
    return budget


def encode_classification(examples: Sequence[TextExample], tokenizer: Tokenizer, framing: Framing, max_len: int,
                          targets: Sequence[int | float | Sequence[int]], policy: TruncationPolicy = "truncate",
                          stats: TruncationStats | None = None) -> list[Feature]:
    """Features ``input_ids`` (+ ``token_type_ids``) and ``labels`` (class id, multi-hot row or value).

    ``targets`` come from ``task_data.encode_labels`` / ``encode_multi_labels`` / ``regression_targets``.
    """
    if len(targets) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(targets)} targets")
    pair = any(e.text_pair is not None for e in examples)
    budget = _budget(max_len, framing, pair)
    texts = tokenizer.encode_batch([e.text for e in examples])
    pairs = tokenizer.encode_batch([e.text_pair or "" for e in examples]) if pair else [None] * len(examples)
    features = []
    for ex, a, b, y in zip(examples, texts, pairs, targets, strict=True):
        if ex.text_pair is None:
            a = fit_length(a, budget + (len(framing.between) if pair else 0), policy, ex.where, stats)
            b = None
        else:
            a, b = fit_pair(a, b, budget, policy, ex.where, stats)
        features.append({**framing.feature(*framing.frame(a, b)), "labels": y})
    return features


def encode_tagging(sentences: Sequence[TaggedSentence], tokenizer: Tokenizer, framing: Framing, max_len: int,
                   vocab: LabelVocab, policy: TruncationPolicy = "truncate",
                   stats: TruncationStats | None = None) -> list[Feature]:
    """Features for token classification: each word's first sub-token carries its tag id, the rest -100.

    ``n_words`` counts the words kept (after truncation), in order; predictions at
    the labelled positions map back to ``sentence.tokens[:n_words]``.
    """
    budget = _budget(max_len, framing, pair=False)
    features = []
    for s in sentences:
        enc = tokenizer.hf.encode(list(s.tokens), is_pretokenized=True, add_special_tokens=False)
        word_ids = enc.word_ids
        if set(w for w in word_ids if w is not None) != set(range(len(s.tokens))):
            raise DataError(f"{s.where}: a word of this sentence encodes to no token; remove or replace it")
        ids = list(enc.ids)
        if stats is not None:
            stats.seen += 1
        if len(ids) > budget:
            if policy == "error":
                raise DataError(f"{s.where}: {len(ids)} tokens exceed the limit of {budget}; split the sentence, "
                                "raise the maximum length, or set truncation: truncate")
            cut = budget
            while cut > 0 and cut < len(ids) and word_ids[cut] == word_ids[cut - 1]:
                cut -= 1  # back off to the start of the word straddling the limit
            if stats is not None:
                stats.truncated += 1
                stats.tokens_dropped += len(ids) - cut
            ids, word_ids = ids[:cut], word_ids[:cut]
        labels, prev = [], None
        for w in word_ids:
            labels.append(vocab.encode(s.tags[w], s.where) if w != prev else IGNORE_INDEX)
            prev = w
        framed, types = framing.frame(ids)
        pad_l, pad_r = [IGNORE_INDEX] * len(framing.prefix), [IGNORE_INDEX] * len(framing.suffix)
        n_words = (word_ids[-1] + 1) if word_ids else 0
        features.append({**framing.feature(framed, types), "labels": pad_l + labels + pad_r, "n_words": n_words})
    return features


@dataclass(frozen=True)
class SpanMap:
    """Where the context sits in a QA feature: token ``context_start`` onward, with character offsets."""

    context_start: int
    offsets: tuple[tuple[int, int], ...]

    def answer_text(self, context: str, start: int, end: int) -> str:
        """The context substring covered by feature tokens start..end (empty if outside the context).

        Stripped: byte-level BPE offsets include the space before a word.
        """
        s, e = start - self.context_start, end - self.context_start
        if not (0 <= s <= e < len(self.offsets)):
            return ""
        return context[self.offsets[s][0]:self.offsets[e][1]].strip()


def encode_qa(examples: Sequence[QAExample], tokenizer: Tokenizer, framing: Framing, max_len: int,
              policy: TruncationPolicy = "truncate", stats: TruncationStats | None = None
              ) -> tuple[list[Feature], list[SpanMap]]:
    """Features ``question between context`` with ``start_positions``/``end_positions`` of the first answer.

    The question is limited to half the budget; the context gets the rest. Returns the features
    and, per feature, a :class:`SpanMap` to turn predicted token spans back into answer text.
    """
    budget = _budget(max_len, framing, pair=True)
    features, maps = [], []
    for ex in examples:
        q_ids = tokenizer.encode(ex.question)
        question = fit_length(q_ids, max(1, budget // 2), policy, ex.where)
        enc = tokenizer.hf.encode(ex.context, add_special_tokens=False)
        ctx_ids = fit_length(enc.ids, budget - len(question), policy, ex.where)
        if stats is not None:  # one sequence per question: its question and context cuts together
            dropped = len(q_ids) - len(question) + len(enc.ids) - len(ctx_ids)
            stats.seen += 1
            stats.truncated += int(dropped > 0)
            stats.tokens_dropped += dropped
        offsets = tuple(tuple(o) for o in enc.offsets[:len(ctx_ids)])
        ids, types = framing.frame(question, ctx_ids)
        span = SpanMap(len(framing.prefix) + len(question) + len(framing.between), offsets)
        start = end = IGNORE_INDEX
        if ex.answers:
            a0, a1 = ex.answer_starts[0], ex.answer_starts[0] + len(ex.answers[0])
            inside = [i for i, (s, e) in enumerate(offsets) if s < a1 and e > a0]  # tokens overlapping the answer
            if inside and offsets[inside[-1]][1] >= a1:  # the answer's last character survived truncation
                start, end = span.context_start + inside[0], span.context_start + inside[-1]
            elif stats is not None:
                stats.answers_lost += 1
        features.append({**framing.feature(ids, types), "start_positions": start, "end_positions": end})
        maps.append(span)
    return features, maps


class TaskBatches:
    """Padded batches of features; ``batch(step, micro)`` depends only on (seed, step, micro).

    ``shuffle`` (training): micro-batch k = step * grad_accum + micro is slice k mod n of epoch k // n's
    permutation (n = batches per epoch; the last batch of an epoch may be smaller). Without shuffle
    (evaluation) ``batch(i)`` is the i-th consecutive slice, and ``len(self)`` slices cover the data once.

    ``group_by_length`` (training): the epoch's permutation is cut into pools of ``GROUP_POOL`` batches, each
    pool is sorted by length (source + target tokens) and cut into batches, and the epoch's batches are
    shuffled (same seed): rows of a batch have similar lengths, so little compute goes to padding (random
    verse batches of the Bible pairs are 46% real tokens, grouped ones 82%), while every example is still
    seen once per epoch in a seeded order.
    """

    def __init__(self, features: Sequence[Feature], batch_size: int, *, pad_id: int, seed: int = 0,
                 shuffle: bool = True, grad_accum: int = 1, token_labels: bool | None = None,
                 group_by_length: bool = False) -> None:
        if not features:
            raise DataError("no examples to batch; check the data files")
        if batch_size < 1 or grad_accum < 1:
            raise ValueError(f"batch_size and grad_accum must be >= 1, got {batch_size} and {grad_accum}")
        self.features, self.batch_size, self.pad_id = list(features), batch_size, pad_id
        self.seed, self.shuffle, self.grad_accum = seed, shuffle, grad_accum
        # per-token labels (tagging features carry n_words) pad with -100; others are one value/row per example
        self.token_labels = "n_words" in self.features[0] if token_labels is None else token_labels
        self.group_by_length = group_by_length and shuffle
        self._epoch_batches: tuple[int, list[np.ndarray]] | None = None  # (epoch, its grouped batches)

    def __len__(self) -> int:
        return math.ceil(len(self.features) / self.batch_size)

    def _indices(self, step: int, micro: int) -> np.ndarray:
        k = step * self.grad_accum + micro if self.shuffle else step
        epoch, slot = divmod(k, len(self))
        if self.group_by_length:
            return self._grouped(epoch)[slot]
        order = np.arange(len(self.features))
        if self.shuffle:
            order = np.random.default_rng(batch_seed(self.seed, epoch)).permutation(len(self.features))
        return order[slot * self.batch_size:(slot + 1) * self.batch_size]

    def _grouped(self, epoch: int) -> list[np.ndarray]:
        """Epoch ``epoch``'s length-grouped batches (cached for the current epoch)."""
        if self._epoch_batches is None or self._epoch_batches[0] != epoch:
            rng = np.random.default_rng(batch_seed(self.seed, epoch))
            order = rng.permutation(len(self.features))
            lengths = np.array([_length(f) for f in self.features])
            pool, batches = GROUP_POOL * self.batch_size, []
            for start in range(0, len(order), pool):
                chunk = order[start:start + pool]
                chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
                batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
            self._epoch_batches = (epoch, [batches[i] for i in rng.permutation(len(batches))])
        return self._epoch_batches[1]

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask`` (B, T) (+ ``token_type_ids``) and every label key."""
        return collate([self.features[i] for i in self._indices(step, micro)], self.pad_id, self.token_labels)


GROUP_POOL = 50  # batches per length-sorted pool: large enough to match lengths, small enough to stay random


def _length(feature: Feature) -> int:
    """Tokens a feature costs: its input plus, for seq2seq, its target."""
    labels = feature.get("labels")
    return len(feature["input_ids"]) + (len(labels) if isinstance(labels, list) else 0)


def collate(rows: Sequence[Feature], pad_id: int, token_labels: bool = False) -> dict[str, torch.Tensor]:
    """Pad variable-length rows to the longest; per-token ``labels`` (if ``token_labels``) pad with -100.

    Other keys stack: ints as long, floats as float32, multi-hot rows as (B, K) long.
    """
    T = max(len(r["input_ids"]) for r in rows)
    per_token = {"input_ids", "token_type_ids"} | ({"labels"} if token_labels else set())
    out: dict[str, torch.Tensor] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if key in per_token:
            fill = {"input_ids": pad_id, "token_type_ids": 0}.get(key, IGNORE_INDEX)
            out[key] = torch.tensor([v + [fill] * (T - len(v)) for v in values], dtype=torch.long)
        else:
            dtype = torch.float32 if isinstance(values[0], float) else torch.long
            out[key] = torch.tensor(values, dtype=dtype)
    out["attention_mask"] = torch.tensor([[1] * len(r["input_ids"]) + [0] * (T - len(r["input_ids"]))
                                          for r in rows], dtype=torch.long)
    return out
