"""Objectives turn (model, batch) into a loss and named metrics; batches are built in ``fromzero.data``."""

from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives.base import Objective, ObjectiveOutput
from fromzero.objectives.causal_lm import CausalLM
from fromzero.objectives.classification import SequenceClassification
from fromzero.objectives.masked_lm import MaskedLM
from fromzero.objectives.seq2seq import Seq2SeqLM
from fromzero.objectives.span_corruption import SpanCorruption, span_accuracy
from fromzero.objectives.span_qa import SpanQA
from fromzero.objectives.token_classification import TokenClassification

__all__ = [
    "IGNORE_INDEX", "CausalLM", "MaskedLM", "Objective", "ObjectiveOutput", "Seq2SeqLM", "SequenceClassification",
    "SpanCorruption", "SpanQA", "TokenClassification", "span_accuracy",
]
