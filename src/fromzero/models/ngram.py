"""N-gram language model with interpolated modified Kneser-Ney smoothing: counts, not gradients.

Chen & Goodman 1998, "An Empirical Study of Smoothing Techniques for Language Modeling" (TR-10-98), section 3:

    P_k(w | h) = max(c_k(hw) - D_k(c_k(hw)), 0) / c_k(h.) + gamma_k(h) P_{k-1}(w | h')    if c_k(h.) > 0
    P_k(w | h) = P_{k-1}(w | h')                                                        otherwise (unseen h)
    gamma_k(h) = (D_k1 N_1(h.) + D_k2 N_2(h.) + D_k3+ N_3+(h.)) / c_k(h.)
    P_0(w)     = 1 / V

h is the k-1 tokens before w, h' is h without its oldest token, c_k(h.) = sum_w c_k(hw) and N_r(h.) the number
of w with c_k(hw) = r (N_3+: >= 3). At the highest order n, c_n are raw counts; below it c_k(hw) = N_1+(. hw),
the continuation count: how many distinct tokens were seen just before hw (a document start counts as one).
Each order's discounts come from its count-of-counts n_r (entries with count r):

    Y = n_1 / (n_1 + 2 n_2),   D_r = r - (r + 1) Y n_{r+1} / n_r     (r = 1, 2, 3; D_3 serves counts >= 3)

clamped to [0, r] (so max(c - D, 0) = c - D and every distribution sums to 1); a D_r whose n_r or n_1 is 0
falls back to ``discount``. ``smoothing: interpolated`` is interpolated Kneser-Ney with the one ``discount``.

An n-gram is counted only inside one document: its context (not its last token) holds no ``eos_id``. The
logits at position t are log P(. | the last <= n-1 tokens of the window up to t, none before an eos or a
masked position): the first positions of a window back off to shorter contexts, so cross-entropy of the
logits is exactly the n-gram model's per-token NLL. State: per order k, the sorted k-gram keys
(sum_i token_i V^(k-i), oldest first) and their counts, in buffers (``keys_k``, ``counts_k``); their sizes
are ``table_sizes`` in the config, filled by :meth:`NGram.fit_counts`, so model.safetensors loads into the
model the saved config builds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model

KEY_LIMIT = 2 ** 63  # keys (with one extra "document start" symbol) must fit int64


@dataclass(frozen=True)
class NGramConfig:
    """Order, smoothing and vocabulary of an n-gram model."""

    vocab_size: int = field(65, help="number of token ids (the tokenizer's vocabulary size)")
    order: int = field(3, help="n: tokens per n-gram (the context is the n-1 before the predicted token)")
    smoothing: Literal["modified", "interpolated"] = field(
        "modified", help="modified: Chen & Goodman's three discounts per order from count-of-counts; "
                         "interpolated: one discount for every count")
    discount: float = field(0.75, help="interpolated's discount, and modified's fallback where count-of-counts "
                                       "are too few to estimate one")
    block_size: int = field(256, help="window length the runner and evaluation feed (any length works)")
    eos_id: int | None = field(None, help="document boundary token (filled from the tokenizer)")
    table_sizes: list[int] = field([], help="distinct k-grams per order k = 1..n: filled by fitting, [] before")

    def __post_init__(self) -> None:
        require(self.vocab_size > 0, "vocab_size", f"must be positive, got {self.vocab_size}")
        require(self.order >= 1, "order", f"must be at least 1, got {self.order}")
        require((self.vocab_size + 1) ** self.order < KEY_LIMIT, "order",
                f"{self.order}-gram keys of a {self.vocab_size}-token vocabulary overflow int64; lower the order")
        require(0.0 <= self.discount <= 1.0, "discount", f"must be in [0, 1], got {self.discount}")
        require(self.block_size > 0, "block_size", f"must be positive, got {self.block_size}")
        require(self.eos_id is None or 0 <= self.eos_id < self.vocab_size, "eos_id", "must be a token id or null")
        require(len(self.table_sizes) in (0, self.order) and all(s >= 0 for s in self.table_sizes),
                "table_sizes", f"must be [] or {self.order} sizes >= 0 (one per order); it is filled by fitting")


def context_lengths(boundary: Tensor, limit: int) -> Tensor:
    """boundary (..., T) bool -> (..., T): tokens ending at t (t included) that may be the context of the next
    token: back to just after the last boundary at or before t, at most ``limit``."""
    pos = torch.arange(boundary.shape[-1], device=boundary.device)
    last = torch.where(boundary, pos, torch.full_like(pos, -1)).cummax(-1).values
    return (pos - last).clamp(max=limit)


def estimate_discounts(counts: Tensor, smoothing: str, fallback: float) -> Tensor:
    """counts (E,) of one order -> (3,) float64 discounts D_1, D_2, D_3+ (see the module docstring)."""
    if smoothing == "interpolated":
        return torch.tensor([min(fallback, r) for r in (1.0, 2.0, 3.0)], dtype=torch.float64)
    n = [int((counts == r).sum()) for r in range(1, 5)]
    y = n[0] / (n[0] + 2 * n[1]) if n[0] else 0.0
    out = []
    for r in (1, 2, 3):
        d = r - (r + 1) * y * n[r] / n[r - 1] if n[0] and n[r - 1] else fallback
        out.append(min(max(d, 0.0), float(r)))
    return torch.tensor(out, dtype=torch.float64)


def count_order(tokens: Tensor, keys: Tensor, avail: Tensor, k: int, highest: bool,
                vocab: int) -> tuple[Tensor, Tensor]:
    """The distinct k-grams (sorted keys (E,)) and their counts (E,): raw at the highest order, else the number of
    distinct left neighbours (``vocab`` stands for a document start). ``keys`` (N,): the k-gram ending at each
    position; ``avail`` (N,): context tokens before each position."""
    valid = avail >= k - 1
    if highest:
        return torch.unique(keys[valid], return_counts=True)
    index = torch.arange(len(tokens), device=tokens.device)
    left = torch.where(avail >= k, tokens[(index - k).clamp_min(0)], torch.full_like(tokens, vocab))
    pairs = torch.unique(keys[valid] * (vocab + 1) + left[valid])  # each (k-gram, left neighbour) once
    return torch.unique_consecutive(pairs // (vocab + 1), return_counts=True)


@dataclass
class OrderTable:
    """One order's lookup tables, derived from its keys and counts."""

    contexts: Tensor  # (C,) sorted context keys
    starts: Tensor  # (C,) first entry of each context
    lengths: Tensor  # (C,) entries of each context
    gamma: Tensor  # (C,) float64 back-off weight
    next_token: Tensor  # (E,) the predicted token of each entry
    prob: Tensor  # (E,) float64 discounted probability max(c - D(c), 0) / c(h.)


def order_table(keys: Tensor, counts: Tensor, discounts: Tensor, vocab: int) -> OrderTable:
    """keys (E,) sorted, counts (E,), discounts (3,) -> the order's contexts, back-off weights and probabilities."""
    contexts, inverse, lengths = torch.unique_consecutive(keys // vocab, return_inverse=True, return_counts=True)
    c = counts.double()
    d = discounts.to(c.device)[(counts.clamp(1, 3) - 1).long()]  # (E,) D(c) of each entry
    total = torch.zeros(len(contexts), dtype=torch.float64, device=c.device).index_add_(0, inverse, c)
    gamma = torch.zeros_like(total).index_add_(0, inverse, d) / total
    prob = (c - d).clamp_min(0.0) / total[inverse]
    return OrderTable(contexts, torch.cumsum(lengths, 0) - lengths, lengths, gamma, keys % vocab, prob)


def _expand_ranges(starts: Tensor, lengths: Tensor) -> Tensor:
    """starts (R,), lengths (R,) -> (sum lengths,): start_r, start_r + 1, ..., start_r + length_r - 1 for each r."""
    ends = torch.cumsum(lengths, 0)
    offsets = torch.arange(int(ends[-1]) if len(ends) else 0, device=starts.device)
    return offsets - torch.repeat_interleave(ends - lengths - starts, lengths)


class NGram(nn.Module):
    """Kneser-Ney n-gram language model. ``fit_counts(tokens)`` fills the tables; ``forward(idx)`` gives
    log-probabilities (B, T, V) like a GPT's logits. No parameters: the state is buffers."""

    def __init__(self, config: NGramConfig) -> None:
        super().__init__()
        self.config = config
        sizes = config.table_sizes or [0] * config.order
        for k, size in enumerate(sizes, start=1):
            self.register_buffer(f"keys_{k}", torch.zeros(size, dtype=torch.int64))
            self.register_buffer(f"counts_{k}", torch.zeros(size, dtype=torch.int32))
        self.register_buffer("discounts", torch.zeros(config.order, 3, dtype=torch.float64))

    @torch.no_grad()
    def fit_counts(self, tokens: Tensor) -> None:
        """Count every order from a token stream (N,), replacing any earlier counts; sets ``table_sizes``."""
        c = self.config
        tokens = tokens.long().flatten().to(self.discounts.device)
        if len(tokens) and (int(tokens.min()) < 0 or int(tokens.max()) >= c.vocab_size):
            raise ValueError(f"token ids must be in [0, {c.vocab_size}); got [{int(tokens.min())}, "
                             f"{int(tokens.max())}]")
        boundary = tokens == c.eos_id if c.eos_id is not None else torch.zeros_like(tokens, dtype=torch.bool)
        # context tokens before position i: those ending at i-1 that may be a context
        avail = torch.cat([torch.zeros(min(1, len(tokens)), dtype=torch.int64, device=tokens.device),
                           context_lengths(boundary, c.order)[:-1]])
        keys, sizes = tokens.clone(), []
        for k in range(1, c.order + 1):
            if k > 1:  # the k-gram ending at i: the (k-1)-gram ending at i-1, then token i
                keys = torch.cat([keys[:1], keys[:-1] * c.vocab_size + tokens[1:]])
            grams, counts = count_order(tokens, keys, avail, k, k == c.order, c.vocab_size)
            setattr(self, f"keys_{k}", grams.clone())  # own storage: unique's output may be a narrowed buffer
            setattr(self, f"counts_{k}", counts.int())
            self.discounts[k - 1] = estimate_discounts(counts, c.smoothing, c.discount)
            sizes.append(len(grams))
        self.config = dataclasses.replace(c, table_sizes=sizes)

    def tables(self) -> list[OrderTable]:
        """Each order's lookup tables (order 1 first), derived from the buffers."""
        return [order_table(getattr(self, f"keys_{k}"), getattr(self, f"counts_{k}"), self.discounts[k - 1],
                            self.config.vocab_size) for k in range(1, self.config.order + 1)]

    def forward(self, idx: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """idx (B, T) -> log P(next token | up to n-1 previous window tokens) (B, T, V), float32.

        Positions where ``attention_mask`` is 0 (padding) and eos tokens end the context like a document start."""
        c, (B, T) = self.config, idx.shape
        V = c.vocab_size
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= V):
            raise ValueError(f"token ids must be in [0, {V}); got [{int(idx.min())}, {int(idx.max())}]")
        boundary = idx == c.eos_id if c.eos_id is not None else torch.zeros_like(idx, dtype=torch.bool)
        if attention_mask is not None:
            boundary = boundary | (attention_mask == 0)
        ctx_len = context_lengths(boundary, c.order - 1).flatten()  # (B*T,)
        probs = torch.full((B * T, V), 1.0 / V, dtype=torch.float64, device=idx.device)
        key = torch.zeros_like(idx)  # (B, T): key of the last k-1 tokens ending at each position
        for k, table in enumerate(self.tables(), start=1):
            if k > 1:
                key = torch.cat([idx[:, :1], key[:, :-1] * V + idx[:, 1:]], dim=1)
            rows = torch.nonzero(ctx_len >= k - 1).squeeze(1)
            self._interpolate(probs, rows, key.flatten()[rows], table)
        return probs.log().float().view(B, T, V)

    @staticmethod
    def _interpolate(probs: Tensor, rows: Tensor, keys: Tensor, table: OrderTable) -> None:
        """probs (R_all, V) of order k-1 -> order k in place, for ``rows`` whose context ``keys`` the order saw."""
        if not len(table.contexts) or not len(rows):
            return
        at = torch.searchsorted(table.contexts, keys).clamp(max=len(table.contexts) - 1)
        seen = table.contexts[at] == keys
        rows, at = rows[seen], at[seen]
        probs[rows] *= table.gamma[at].unsqueeze(1)
        entries = _expand_ranges(table.starts[at], table.lengths[at])  # every (row, seen next token) pair
        probs.index_put_((torch.repeat_interleave(rows, table.lengths[at]), table.next_token[entries]),
                         table.prob[entries], accumulate=True)


register_family("ngram", NGramConfig, NGram)


@register_model("ngram-3")
def ngram_3() -> NGramConfig:
    """Trigram, interpolated modified Kneser-Ney (character level: a 2-character context)."""
    return NGramConfig(vocab_size=128, order=3, block_size=128)


@register_model("ngram-5")
def ngram_5() -> NGramConfig:
    """5-gram, interpolated modified Kneser-Ney (character level: a 4-character context)."""
    return NGramConfig(vocab_size=128, order=5, block_size=128)
