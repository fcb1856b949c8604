"""Trivial predictors a pretrained model must beat: the most frequent token, the majority NSP class.

A model that ignores its input can reach these accuracies; beating them shows it learned from context.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import torch

from fromzero.data.loader import IGNORE_INDEX
from fromzero.data.nsp_pairs import IS_NEXT


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


def span_baseline(labels: torch.Tensor, train_token_counts: torch.Tensor | np.ndarray) -> float:
    """Target-token accuracy of always predicting the most frequent training target token (T5).

    ``train_token_counts``: frequencies of target tokens in training batches,
    e.g. ``torch.bincount(labels[labels >= 0], minlength=vocab_size)``.
    """
    return most_frequent_token_accuracy(labels, train_token_counts)
