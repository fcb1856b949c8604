"""Additive ("Bahdanau") attention: score a query against every source position with a one-hidden-layer net.

Bahdanau, Cho & Bengio 2014, "Neural Machine Translation by Jointly Learning to Align and Translate"
(https://arxiv.org/abs/1409.0473), eq. 6 and appendix A.1.2; s is the decoder state (the query), h_j the
encoder's annotation of source position j (the keys, which are also the values)::

    e_j = v^T tanh(W_s s + W_h h_j + b)        score of source position j          (B, T, S)
    a_j = exp(e_j) / sum_k exp(e_k)            softmax over the source, padding masked (a_j = 0 there)
    c   = sum_j a_j h_j                        the context vector                  (B, T, K)

``W_h h_j + b`` does not depend on the query, so a decoder computes it once per source sentence
(:meth:`AdditiveAttention.project_keys`) and reuses it at every output step.
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.nn.linear import Linear


class AdditiveAttention(nn.Module):
    """v^T tanh(W_s s + W_h h + b) scores, masked softmax over the source, weighted sum of the keys."""

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.query_proj = Linear(query_dim, attn_dim, bias=False)  # W_s
        self.key_proj = Linear(key_dim, attn_dim, bias=True)  # W_h, b
        self.v = Linear(attn_dim, 1, bias=False)  # v^T

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """keys (B, S, K) -> W_h keys + b (B, S, A): the query-independent half of every score."""
        return self.key_proj(keys)

    def scores(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        """query (B, T, Q), projected keys (B, S, A) -> unnormalised scores e (B, T, S)."""
        hidden = torch.tanh(self.query_proj(query)[:, :, None, :] + projected_keys[:, None, :, :])  # (B, T, S, A)
        return self.v(hidden).squeeze(-1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None, *,
                projected_keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, Q) or (B, Q), keys (B, S, K), mask (B, S) True/1 = real source token
        -> context (B, T, K) and weights (B, T, S) (without the T axis for a (B, Q) query).

        Each row needs at least one real source position. ``projected_keys`` (B, S, A): reuse
        :meth:`project_keys` of the same keys."""
        single = query.dim() == 2
        if single:
            query = query[:, None, :]  # (B, 1, Q)
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        e = self.scores(query, projected_keys).float()  # (B, T, S); softmax in float32
        if mask is not None:
            e = e.masked_fill(~mask.bool()[:, None, :], float("-inf"))  # exp(-inf) = 0: padding gets no weight
        weights = torch.softmax(e, dim=-1).to(keys.dtype)  # (B, T, S)
        context = weights @ keys  # (B, T, K)
        if single:
            return context[:, 0], weights[:, 0]
        return context, weights
