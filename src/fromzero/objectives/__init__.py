"""Objectives turn (model, batch) into a loss and named metrics."""

from fromzero.objectives.base import Objective, ObjectiveOutput
from fromzero.objectives.causal_lm import IGNORE_INDEX, CausalLM
from fromzero.objectives.masked_lm import (
    MaskedLM,
    MaskedLMBatches,
    MaskedLMConfig,
    chinese_word_ids,
    chinese_word_starts,
    documents_from_stream,
    mask_tokens,
    mlm_baseline,
    most_frequent_token_accuracy,
    nsp_baseline,
    nsp_pair,
    pack_pair,
    word_starts_from_word_ids,
    wordpiece_word_ids,
    wordpiece_word_starts,
)
from fromzero.objectives.span_corruption import (
    SpanCorruption,
    SpanCorruptionBatches,
    SpanCorruptionConfig,
    corrupt,
    input_and_target_lengths,
    merge,
    random_spans_noise_mask,
    sentinel_tokens,
    span_accuracy,
    span_baseline,
)

__all__ = [
    "IGNORE_INDEX", "CausalLM", "MaskedLM", "MaskedLMBatches", "MaskedLMConfig", "Objective", "ObjectiveOutput",
    "SpanCorruption", "SpanCorruptionBatches", "SpanCorruptionConfig", "chinese_word_ids", "chinese_word_starts",
    "corrupt", "documents_from_stream", "input_and_target_lengths", "mask_tokens", "merge", "mlm_baseline",
    "most_frequent_token_accuracy", "nsp_baseline", "nsp_pair", "pack_pair", "random_spans_noise_mask",
    "sentinel_tokens", "span_accuracy", "span_baseline", "word_starts_from_word_ids", "wordpiece_word_ids",
    "wordpiece_word_starts",
]
