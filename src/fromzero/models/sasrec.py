"""SASRec: next-item prediction with a causal Transformer over the user's history.

    h = CausalTransformer(E_item[x] + E_pos)          (B, L, D), position t sees items <= t
    p(x_{t+1} = i | x_{<=t}) = softmax_i(h_t . E_item[i])   output tied to the item table

Differences from the paper's code, all standard in later re-implementations: pre-norm blocks from
``fromzero.nn`` with a GELU feed-forward (the paper: LayerNorm on queries only, ReLU), a key padding mask
instead of zeroing padded timesteps after each layer, and a full softmax over all items (the
``next_item`` objective) instead of one sampled negative per position. Positions are counted from the
right end of the LEFT-padded history (see ``fromzero.nn.item_sequence``), as the paper's code left-pads to
max_len. Training batches: ``SequenceBatches(mode="next")``; objective: ``next_item``, which calls
``model(history)`` and ``model.item_logits(hidden)``.

Reference: Kang & McAuley 2018, "Self-Attentive Sequential Recommendation",
https://arxiv.org/abs/1808.09781.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.nn.item_sequence import ItemSequenceModel, ItemSequenceShape, keep_recent


@dataclass(frozen=True)
class SASRecConfig(ItemSequenceShape):
    """Shape of a SASRec model (the shared fields: ``nn.item_sequence.ItemSequenceShape``)."""

    dropout: float = field(0.2, help="dropout on embeddings, attention and residual branches")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.max_len > 0, "max_len", f"must be positive, got {self.max_len}")


class SASRec(ItemSequenceModel):
    """Causal item-sequence Transformer (``nn.item_sequence.ItemSequenceModel``): position t sees items
    <= t, trained to predict the next item at every position (``next_item``)."""

    def _score_history(self, history: torch.Tensor) -> torch.Tensor:
        """Logits of the last position; a history longer than max_len keeps its most recent items. An all-PAD
        history still gets a score: a learned "no history" vector (the caller's fallback may prefer popularity)."""
        history = keep_recent(history, self.config.max_len)  # (B, L') most recent items
        return self.item_logits(self(history)[:, -1])  # (B, I)


register_family("sasrec", SASRecConfig, SASRec)


@register_model("sasrec-small")
def sasrec_small() -> SASRecConfig:
    """The paper's MovieLens-1M shape at a shorter history: 2 blocks, 64 wide, 2 heads, 50 items, dropout 0.2."""
    return SASRecConfig(n_layer=2, dim=64, n_head=2, max_len=50, dropout=0.2)
