"""BERT4Rec: the masked-language-model idea applied to item sequences.

    x~ = x with some items replaced by MASK            (the batches do this: SequenceBatches(mode="masked"))
    h  = BidirectionalTransformer(E_item[x~] + E_pos)  (B, L, D), every position sees every real item
    p(x_t = i | x~) = softmax_i(h_t . E_item[i])        at masked positions; output tied to the item table

To recommend, MASK is appended after the most recent item and the logits at that position are read: the
model fills in "the item that comes next". Training masks the last position of a sequence with some
probability too, so this query is one it has practised.

Differences from the paper: pre-norm blocks from ``fromzero.nn`` with a final LayerNorm, and the output
is the hidden state times the item table (the paper adds a GELU + LayerNorm projection and a bias before
it). Positions are counted from the right end of the LEFT-padded history (see
``fromzero.nn.item_sequence``). Objective: ``masked_item``, which calls ``model(history)`` and
``model.item_logits(hidden)``.

Reference: Sun et al. 2019, "BERT4Rec: Sequential Recommendation with Bidirectional Encoder
Representations from Transformer", https://arxiv.org/abs/1904.06690.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.nn.item_sequence import ItemSequenceModel, ItemSequenceShape, keep_recent


@dataclass(frozen=True)
class BERT4RecConfig(ItemSequenceShape):
    """Shape of a BERT4Rec model (the shared fields: ``nn.item_sequence.ItemSequenceShape``)."""

    max_len: int = field(50, help="longest input, the appended MASK included (the most recent items are kept)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.max_len > 1, "max_len", f"must be at least 2 (one item and the MASK), got {self.max_len}")


class BERT4Rec(ItemSequenceModel):
    """Bidirectional item-sequence Transformer (``nn.item_sequence.ItemSequenceModel``). Inputs may hold MASK
    (= n_items + 1) anywhere; PAD (= n_items) keys are never attended to."""

    causal = False

    def _score_history(self, history: torch.Tensor) -> torch.Tensor:
        """MASK is appended after the last column and its logits read; if that makes the input longer than
        max_len, the oldest columns are dropped. An all-PAD history gets the logits of a lone MASK."""
        masked = torch.full_like(history[:, :1], self.mask)  # (B, 1)
        query = keep_recent(torch.cat([history, masked], dim=1), self.config.max_len)  # oldest dropped if too long
        return self.item_logits(self(query)[:, -1])  # (B, I)


register_family("bert4rec", BERT4RecConfig, BERT4Rec)


@register_model("bert4rec-small")
def bert4rec_small() -> BERT4RecConfig:
    """2 blocks, 64 wide, 2 heads, 50 positions (the MASK included), dropout 0.1 (the paper's rate)."""
    return BERT4RecConfig(n_layer=2, dim=64, n_head=2, max_len=50, dropout=0.1)
