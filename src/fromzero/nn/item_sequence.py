"""A Transformer over item sequences (a user's time-ordered history), shared by SASRec and BERT4Rec.

    h_0 = Dropout(E_item[x_t] + E_pos[p_t])         item + learned position embeddings
    h_l = Block_l(h_{l-1})  for l = 1..n_layer      pre-norm blocks, causal (SASRec) or bidirectional (BERT4Rec)
    h   = LN(h_L)                                   final norm
    logits = h E_item[:I]^T                         scores of all I catalogue items, tied to the input table

Item ids are dense 0..I-1; the table has two more rows: PAD = I (padding, kept at zero, never attended to
as a key) and MASK = I + 1 (BERT4Rec's mask token). Sequences are LEFT-padded (most recent item last), and
positions are counted from the right end: the last column always gets position max_len - 1, as in SASRec's
own code, which left-pads every sequence to max_len. So how much padding a batch has changes nothing.

:func:`occlusion_contributions` explains a score by removing one history item at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.nn.attention import SelfAttention, build_attention_mask
from fromzero.nn.block import Block
from fromzero.nn.mlp import MLP
from fromzero.nn.norms import LayerNorm
from fromzero.nn.positions import LearnedPositions


@dataclass(frozen=True)
class ItemSequenceShape:
    """The fields SASRec's and BERT4Rec's configs share (each family subclasses it and sets its own defaults).
    ``n_users`` / ``n_items`` are filled from the data by the runner."""

    n_users: int = field(0, help="number of users (filled from the data; unused by the model)")
    n_items: int = field(0, help="number of catalogue items I (filled from the data); PAD = I, MASK = I + 1")
    n_layer: int = field(2, help="number of Transformer blocks")
    n_head: int = field(2, help="number of attention heads")
    dim: int = field(64, help="model width (item embedding size); must be divisible by n_head")
    max_len: int = field(50, help="longest history read (the most recent items are kept)")
    mlp_hidden: int | None = field(None, help="feed-forward hidden size (null = 4*dim)")
    dropout: float = field(0.1, help="dropout on embeddings, attention and residual branches")
    init_std: float = field(0.02, help="std of the normal init of linear and embedding weights")

    def __post_init__(self) -> None:
        require(self.n_users >= 0, "n_users", f"must be >= 0, got {self.n_users}")
        require(self.n_items >= 0, "n_items", f"must be >= 0, got {self.n_items}")
        require(self.n_layer > 0, "n_layer", f"must be positive, got {self.n_layer}")
        require(self.n_head > 0, "n_head", f"must be positive, got {self.n_head}")
        require(self.dim % self.n_head == 0, "dim",
                f"{self.dim} is not divisible by n_head={self.n_head}; choose a multiple of {self.n_head}")
        require(self.mlp_hidden is None or self.mlp_hidden > 0, "mlp_hidden", "must be positive or null")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.init_std > 0, "init_std", "must be positive")


class ItemSequenceEncoder(nn.Module):
    """items (B, L) -> hidden (B, L, dim); :meth:`item_logits` maps hidden states to item scores.

    ``causal=True``: position t attends to positions <= t (SASRec); ``False``: to every real position
    (BERT4Rec). PAD keys are hidden from every query either way.
    """

    def __init__(self, n_items: int, dim: int, n_layer: int, n_head: int, max_len: int, *, causal: bool,
                 dropout: float = 0.0, mlp_hidden: int | None = None, norm_eps: float = 1e-6,
                 init_std: float = 0.02) -> None:
        super().__init__()
        self.n_items, self.max_len, self.init_std = n_items, max_len, init_std
        self.pad, self.mask = n_items, n_items + 1
        self.item_emb = nn.Embedding(n_items + 2, dim, padding_idx=n_items)  # padding_idx: PAD row gets no gradient
        self.pos_emb = LearnedPositions(max_len, dim)
        self.drop = nn.Dropout(dropout)
        hidden = mlp_hidden or 4 * dim
        self.blocks = nn.ModuleList(
            Block(SelfAttention(dim, n_head, causal=causal, dropout=dropout),
                  MLP(dim, hidden, dropout=dropout, approximate="none"),
                  LayerNorm(dim, eps=norm_eps), LayerNorm(dim, eps=norm_eps), pre_norm=True)
            for _ in range(n_layer))
        self.norm_f = LayerNorm(dim, eps=norm_eps)
        self.causal = causal
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # BERT-style: N(0, init_std) weights, zero biases, PAD row zero.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=self.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Embedding, LearnedPositions)):
            nn.init.normal_(module.weight, mean=0.0, std=self.init_std)
            if module is self.item_emb:
                with torch.no_grad():
                    module.weight[self.pad].zero_()

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items (B, L) int64 in [0, I + 1], LEFT-padded with PAD, L <= max_len -> hidden (B, L, dim)."""
        length = items.shape[1]
        if length > self.max_len:
            raise ValueError(f"item sequence of {length} exceeds max_len {self.max_len}; keep the most recent "
                             f"{self.max_len} items")
        # right-aligned positions: the most recent item is at max_len - 1 whatever the padding
        positions = torch.arange(self.max_len - length, self.max_len, device=items.device)  # (L,)
        x = self.drop(self.item_emb(items) + self.pos_emb(positions))  # (B, L, D)
        real = items != self.pad  # (B, L)
        mask = build_attention_mask(real, length, length, causal=self.causal, device=items.device)
        for block in self.blocks:
            x = block(x, mask=mask)
        return self.norm_f(x)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., dim) -> scores of the I catalogue items (..., I); PAD and MASK are never scored."""
        return hidden @ self.item_emb.weight[: self.n_items].T


def keep_recent(history: torch.Tensor, max_len: int) -> torch.Tensor:
    """history (B, L) LEFT-padded -> (B, min(L, max_len)): the most recent ``max_len`` columns."""
    return history[:, -max_len:] if history.shape[1] > max_len else history


def occlusion_contributions(score: Callable[[torch.Tensor], torch.Tensor], history: torch.Tensor,
                            items: torch.Tensor, pad: int) -> torch.Tensor:
    """What each history position adds to each item's score, by occlusion: (B, K, L).

    contribution[b, k, l] = score(history)[b, items[b, k]] - score(history with column l of row b set to
    PAD)[b, items[b, k]]; 0 where history[b, l] is PAD. ``score`` maps a history (B, L) to (B, I).
    One forward pass per column that has any real item (L passes at most).
    """
    batch, length = history.shape
    with torch.no_grad():
        full = score(history).gather(1, items)  # (B, K)
        out = full.new_zeros(batch, items.shape[1], length)  # (B, K, L)
        for col in range(length):
            real = history[:, col] != pad  # (B,)
            if not bool(real.any()):
                continue
            occluded = history.clone()
            occluded[:, col] = pad
            drop = full - score(occluded).gather(1, items)  # (B, K)
            out[:, :, col] = torch.where(real[:, None], drop, torch.zeros_like(drop))
    return out


class ItemSequenceModel(nn.Module):
    """What SASRec and BERT4Rec share around :class:`ItemSequenceEncoder`: the encoder built from an
    :class:`ItemSequenceShape` config, PAD / MASK ids, tied item logits, ``score_all`` and occlusion
    explanations. A subclass sets ``causal`` and defines ``_score_history(history (B, L)) -> (B, I)``, the
    scores of the item that follows a LEFT-padded history."""

    causal = True

    def __init__(self, config: ItemSequenceShape) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = ItemSequenceEncoder(c.n_items, c.dim, c.n_layer, c.n_head, c.max_len, causal=self.causal,
                                           dropout=c.dropout, mlp_hidden=c.mlp_hidden, init_std=c.init_std)
        self.pad, self.mask = c.n_items, c.n_items + 1

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) LEFT-padded with PAD, L <= max_len -> hidden (B, L, dim)."""
        return self.encoder(history)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., dim) -> logits over the catalogue (..., n_items), tied to the item embeddings."""
        return self.encoder.item_logits(hidden)

    def score_all(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, I) scores of the item after ``batch["history"]`` (B, L), LEFT-padded, most recent last."""
        return self._score_history(batch["history"])

    def history_contributions(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """items (B, K) -> (B, K, L) by occlusion: full score minus the score with history column l set to
        PAD; positive = that past item raised the item's score. 0 at pads."""
        return occlusion_contributions(self._score_history, batch["history"], items, self.pad)

