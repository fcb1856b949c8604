"""Pretraining tasks: what each objective needs around the shared Trainer.

A task knows, for one objective (causal LM, masked LM + NSP, span
corruption): its config class, the special tokens its tokenizer must have,
the model fields it fills from the tokenizer (pad/eos ids), how to build
train/validation batch sources from token shards, and how to show samples
at the end of a run. The Trainer itself stays ignorant of all of this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fromzero.data.denoising_text_batches import MASK_TOKEN, DenoisingTextBatches, DenoisingTextConfig
from fromzero.data.loader import RandomWindows
from fromzero.data.masked_lm_batches import MaskedLMBatches, MaskedLMConfig
from fromzero.data.nsp_pairs import documents_from_stream
from fromzero.data.span_corruption_batches import (
    SpanCorruptionBatches,
    SpanCorruptionConfig,
    input_and_target_lengths,
    sentinel_tokens,
)
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig
from fromzero.data.word2vec_batches import Word2VecBatchConfig, Word2VecBatches
from fromzero.data.word_segmentation import chinese_word_starts, wordpiece_word_starts
from fromzero.errors import ConfigError
from fromzero.generation import SamplingConfig, fill_mask, generate_text, seq2seq_text
from fromzero.objectives import CausalLM, MaskedLM, SpanCorruption
from fromzero.objectives.denoising_autoencoder import DenoisingAutoencoder
from fromzero.objectives.negative_sampling import NegativeSampling

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class CausalLMConfig:
    """Next-token prediction has no settings of its own."""


@dataclass(frozen=True)
class Task:
    name: str
    config_cls: type
    special_tokens: Callable[[Any], list[str]]
    model_fields: Callable[[Tokenizer], dict[str, Any]]
    batches: Callable[..., tuple[Any, Any]]
    objective: Callable[[Any], Any]
    samples: Callable[[nn.Module, Tokenizer, list[str], SamplingConfig], list[str]]
    seq_len_from_model: bool = True  # False: batches are not windows of the model's context length


def _id(tok: Tokenizer, token: str) -> int:
    idx = tok.token_to_id(token)
    if idx is None:
        raise ConfigError(f"data.tokenizer: the tokenizer has no {token!r} token; add it to special_tokens")
    return idx


# -- causal LM (GPT) -------------------------------------------------------------------------------
def _causal_batches(train: np.ndarray, val: np.ndarray, tok: Tokenizer, seq_len: int, batch_size: int,
                    seed: int, cfg: CausalLMConfig) -> tuple[Any, Any]:
    val_src = RandomWindows(val, seq_len, batch_size, seed=seed + 1) if len(val) > seq_len else None
    return RandomWindows(train, seq_len, batch_size, seed=seed), val_src


# -- masked LM + NSP (BERT) ------------------------------------------------------------------------
def _mlm_batches(train: np.ndarray, val: np.ndarray, tok: Tokenizer, seq_len: int, batch_size: int,
                 seed: int, cfg: MaskedLMConfig) -> tuple[Any, Any]:
    ids = {name: _id(tok, name) for name in BERT_SPECIALS}
    special = sorted({tok.token_to_id(t) for t in tok.special_tokens} - {None})

    vocab = [tok.id_to_token(i) or "" for i in range(tok.vocab_size)]

    def source(tokens: np.ndarray, s: int) -> MaskedLMBatches:
        starts = documents_from_stream(tokens, tok.eos_id) if tok.eos_id is not None else None
        words = None
        if cfg.whole_word and cfg.segmenter == "jieba":
            words = chinese_word_starts(tokens, vocab, special)
        elif cfg.whole_word:
            words = wordpiece_word_starts(tokens, vocab)
        return MaskedLMBatches(tokens, starts, seq_len=seq_len, batch_size=batch_size, seed=s, cfg=cfg,
                               cls_id=ids["[CLS]"], sep_id=ids["[SEP]"], pad_id=ids["[PAD]"],
                               mask_id=ids["[MASK]"], vocab_size=tok.vocab_size, special_ids=special,
                               eos_id=tok.eos_id, word_starts=words)

    # a single-document NSP stream needs room for A and a distant B
    return source(train, seed), source(val, seed + 1) if len(val) > 4 * seq_len else None


def _fill_mask_samples(model: nn.Module, tok: Tokenizer, prompts: list[str], cfg: SamplingConfig) -> list[str]:
    prompts = [p for p in prompts if "[MASK]" in p]
    if not prompts:
        return []
    results = fill_mask(model, tok, prompts, top_k=5)
    lines = []
    for text, per_mask in zip(prompts, results, strict=True):
        guesses = "; ".join(", ".join(f"{t} {p:.2f}" for t, p in top) for top in per_mask)
        lines.append(f"{text} -> {guesses}")
    return lines


# -- span corruption (T5) --------------------------------------------------------------------------
def _span_batches(train: np.ndarray, val: np.ndarray, tok: Tokenizer, seq_len: int, batch_size: int,
                  seed: int, cfg: SpanCorruptionConfig) -> tuple[Any, Any]:
    sentinels = [_id(tok, t) for t in sentinel_tokens(cfg.n_sentinels)]
    pad, eos = tok.pad_id, tok.eos_id
    if pad is None or eos is None:
        raise ConfigError("data.tokenizer: span corruption needs a pad and an end-of-text token")
    raw_len, _ = input_and_target_lengths(seq_len, cfg.noise_density, cfg.mean_span_length)

    def source(tokens: np.ndarray, s: int) -> SpanCorruptionBatches:
        return SpanCorruptionBatches(tokens, input_length=seq_len, batch_size=batch_size, seed=s, cfg=cfg,
                                     sentinel_ids=sentinels, eos_id=eos, pad_id=pad, decoder_start_id=pad)

    return source(train, seed), source(val, seed + 1) if len(val) > 2 * raw_len else None


# -- word2vec (skip-gram / CBOW with negative sampling) ------------------------------------------
def _word2vec_batches(train: np.ndarray, val: np.ndarray, tok: Tokenizer, seq_len: int | None, batch_size: int,
                      seed: int, cfg: Word2VecBatchConfig) -> tuple[Any, Any]:
    specials = [i for i in (tok.token_to_id(t) for t in tok.special_tokens) if i is not None]
    train_src = Word2VecBatches(train, tok.vocab_size, batch_size, seed, cfg, exclude_ids=specials)
    val_src = (Word2VecBatches(val, tok.vocab_size, batch_size, seed + 1, cfg, exclude_ids=specials,
                               counts=train_src.counts) if len(val) > 2 * cfg.window else None)
    return train_src, val_src


def _neighbour_samples(model: nn.Module, tok: Tokenizer, prompts: list[str], cfg: SamplingConfig) -> list[str]:
    """Each prompt word and its 8 nearest words by cosine (a prompt of several tokens uses its first)."""
    lines = []
    for prompt in prompts:
        ids = tok.encode(prompt.strip())
        if not ids:
            continue
        sims, near = model.most_similar(torch.tensor(ids[:1]), k=8)
        words = ", ".join(f"{tok.id_to_token(int(i))} {float(s):.2f}" for s, i in zip(sims[0], near[0], strict=True))
        lines.append(f"{tok.id_to_token(ids[0])} -> {words}")
    return lines


# -- denoising autoencoder (a corrupted window in, the original out) -------------------------------
def _denoising_batches(train: np.ndarray, val: np.ndarray, tok: Tokenizer, seq_len: int, batch_size: int,
                       seed: int, cfg: DenoisingTextConfig) -> tuple[Any, Any]:
    pad, eos = tok.pad_id, tok.eos_id
    if pad is None or eos is None:
        raise ConfigError("data.tokenizer: the denoising autoencoder needs a pad and an end-of-text token")

    def source(tokens: np.ndarray, s: int) -> DenoisingTextBatches:
        return DenoisingTextBatches(tokens, seq_len, batch_size, s, cfg, pad_id=pad, eos_id=eos,
                                    decoder_start_id=pad, mask_id=tok.token_to_id(MASK_TOKEN))

    return source(train, seed), source(val, seed + 1) if len(val) >= seq_len else None


def _continuations(texts: list[str], prompts: list[str]) -> list[str]:
    return [p + t for p, t in zip(prompts, texts, strict=True)]


def _arrows(texts: list[str], prompts: list[str]) -> list[str]:
    return [f"{p} -> {t}" for p, t in zip(prompts, texts, strict=True)]


def _pad_eos_fields(tok: Tokenizer) -> dict[str, Any]:
    return {"pad_id": tok.pad_id, "eos_id": tok.eos_id, "decoder_start_id": tok.pad_id}


TASKS: dict[str, Task] = {
    "causal_lm": Task("causal_lm", CausalLMConfig, lambda cfg: [],
                      lambda tok: {"eos_id": tok.eos_id},  # the n-gram family's document boundary
                      _causal_batches, lambda cfg: CausalLM(),
                      lambda m, t, p, s: _continuations(generate_text(m, t, p, s), p)),
    "masked_lm": Task("masked_lm", MaskedLMConfig, lambda cfg: list(BERT_SPECIALS),
                      lambda tok: {"pad_id": _id(tok, "[PAD]")}, _mlm_batches, MaskedLM, _fill_mask_samples),
    "span_corruption": Task("span_corruption", SpanCorruptionConfig,
                            lambda cfg: sentinel_tokens(cfg.n_sentinels), _pad_eos_fields, _span_batches,
                            SpanCorruption, lambda m, t, p, s: _arrows(seq2seq_text(m, t, p, s), p)),
    "word2vec": Task("word2vec", Word2VecBatchConfig, lambda cfg: [], lambda tok: {}, _word2vec_batches,
                     lambda cfg: NegativeSampling(), _neighbour_samples, seq_len_from_model=False),
    "denoising_autoencoder": Task("denoising_autoencoder", DenoisingTextConfig, lambda cfg: [MASK_TOKEN],
                                  _pad_eos_fields, _denoising_batches, DenoisingAutoencoder,
                                  lambda m, t, p, s: _arrows(seq2seq_text(m, t, p, s), p)),
}
DEFAULT_TASK = {"gpt": "causal_lm", "bert": "masked_lm", "t5": "span_corruption", "seq2seq-rnn": "span_corruption",
                "word2vec": "word2vec", "autoencoder": "denoising_autoencoder"}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"objective.name: unknown objective {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]


def with_special_tokens(cfg: TokenizerConfig, required: list[str]) -> TokenizerConfig:
    """The tokenizer config plus any special tokens the objective needs (kept in order, no duplicates).

    BERT names its own pad and unknown tokens ([PAD], [UNK]): when the recipe kept the default list
    (<|endoftext|>, <unk>, <pad>), BERT's list replaces it, keeping <|endoftext|> as the document
    separator, so the tokenizer has one pad and one unknown token, not two of each.
    """
    have = list(cfg.special_tokens)
    if "[PAD]" in required and have == list(TokenizerConfig().special_tokens):
        have = [*required, "<|endoftext|>"]
    wanted = have + [t for t in required if t not in have]
    return cfg if wanted == list(cfg.special_tokens) else dataclasses.replace(cfg, special_tokens=wanted)
