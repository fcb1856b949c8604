"""What a fine-tuned model predicted on one split, decoded and ready for the metric libraries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TaskOutputs:
    """A model's decoded predictions on one split, ready for the metric libraries.

    sequence_classification  y_true / y_pred: class ids (multi-label: 0/1 rows; regression: values),
                             scores: class probabilities (N, K)
    token_classification     y_true / y_pred: tag strings per sentence (first sub-token of each word)
    span_qa                  y_true: gold answer texts per question, y_pred: the predicted answer text
    sft                      y_true: [reference reply] per prompt, y_pred: the generated reply; prompts, groups
    seq2seq                  y_true: reference texts (as in the file), y_pred: decoded texts, sources: inputs
    """

    kind: str
    problem: str
    y_true: list[Any]
    y_pred: list[Any]
    scores: list[list[float]] | None = None
    label_names: list[str] | None = None
    prompts: list[str] | None = None  # sft: the rendered prompts answered
    groups: list[str | None] | None = None  # sft: each prompt's group (per-group metrics)
    sources: list[str] | None = None  # seq2seq: the source texts
