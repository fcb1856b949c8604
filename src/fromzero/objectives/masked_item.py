"""Masked-item prediction (BERT4Rec): recover the items replaced by MASK, full softmax over the catalogue.

    L = -(1/N) sum_{(b, t) masked} log softmax_i(h_{b,t} . E_item[i])[x_{b,t}]      N = masked positions

Batches from ``SequenceBatches(mode="masked")``: ``history`` (B, L) with some items replaced by MASK and
``target`` (B, L) the original item at masked positions, -100 elsewhere. The arithmetic is the
``next_item`` loss's (:func:`fromzero.objectives.next_item.item_cross_entropy`); only what the targets
mean differs, and the model attends both ways.
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.objectives.base import ObjectiveOutput
from fromzero.objectives.next_item import item_cross_entropy


class MaskedItem:
    """BERT4Rec's objective: cross-entropy of the original item at every masked position."""

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        return item_cross_entropy(model, batch)
