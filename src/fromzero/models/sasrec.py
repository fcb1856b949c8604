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
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.nn.item_sequence import ItemSequenceEncoder, ItemSequenceShape, keep_recent, occlusion_contributions


@dataclass(frozen=True)
class SASRecConfig(ItemSequenceShape):
    """Shape of a SASRec model (the shared fields: ``nn.item_sequence.ItemSequenceShape``)."""

    dropout: float = field(0.2, help="dropout on embeddings, attention and residual branches")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.max_len > 0, "max_len", f"must be positive, got {self.max_len}")


class SASRec(nn.Module):
    """Causal item-sequence Transformer. ``forward(history (B, L)) -> hidden (B, L, dim)``.

    ``score_all`` reads the last position of a LEFT-padded history (the most recent item last);
    ``item_logits`` scores hidden states against every catalogue item (what ``next_item`` needs).
    """

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = ItemSequenceEncoder(c.n_items, c.dim, c.n_layer, c.n_head, c.max_len, causal=True,
                                           dropout=c.dropout, mlp_hidden=c.mlp_hidden, init_std=c.init_std)
        self.pad, self.mask = c.n_items, c.n_items + 1

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) LEFT-padded with PAD, L <= max_len -> hidden (B, L, dim)."""
        return self.encoder(history)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., dim) -> logits over the catalogue (..., n_items), tied to the item embeddings."""
        return self.encoder.item_logits(hidden)

    def _score_history(self, history: torch.Tensor) -> torch.Tensor:
        history = keep_recent(history, self.config.max_len)  # (B, L') most recent items
        return self.item_logits(self(history)[:, -1])  # (B, I)

    def score_all(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, I) next-item logits after ``batch["history"]`` (B, L), LEFT-padded, most recent last.

        Histories longer than max_len keep their most recent max_len items. An all-PAD history (a user with
        no history) still gets a score: the last position's own (PAD + position) embedding, a learned
        "no history" vector; the caller's cold-start fallback may prefer popularity.
        """
        return self._score_history(batch["history"])

    def history_contributions(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """items (B, K) -> (B, K, L) by occlusion: full score minus the score with history column l set to
        PAD; positive = that past item raised the item's score. 0 at pads."""
        return occlusion_contributions(self._score_history, batch["history"], items, self.pad)


register_family("sasrec", SASRecConfig, SASRec)


@register_model("sasrec-small")
def sasrec_small() -> SASRecConfig:
    """The paper's MovieLens-1M shape at a shorter history: 2 blocks, 64 wide, 2 heads, 50 items, dropout 0.2."""
    return SASRecConfig(n_layer=2, dim=64, n_head=2, max_len=50, dropout=0.2)
