"""Choosing the next token from logits: greedy, temperature, top-k and nucleus (top-p) sampling.

    p_i = softmax(z / tau)_i                         temperature tau (tau -> 0 is argmax)
    top-k:  keep the k largest z_i                   (Fan et al., 2018)
    top-p:  keep the smallest set of most likely     (Holtzman et al., 2019,
            tokens whose total probability >= p       https://arxiv.org/abs/1904.09751)

Filtering sets removed logits to -inf, so a softmax over the result is the
renormalised distribution. The most likely token always survives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fromzero.config import field, require


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick tokens and when to stop. Validated on construction."""

    max_new_tokens: int = field(200, help="most tokens to generate per prompt")
    temperature: float = field(1.0, help="softmax temperature; 0 means greedy (argmax)")
    top_k: int | None = field(None, help="sample only among the k most likely tokens (null: all)")
    top_p: float | None = field(None, help="nucleus sampling: smallest set with probability >= top_p")
    stop: list[str] = field([], help="stop at the first occurrence of any of these strings (excluded)")
    seed: int | None = field(None, help="random seed; the same seed gives the same tokens (null: global RNG)")
    greedy: bool = field(False, help="always take the most likely token (ignores temperature/top_k/top_p)")

    def __post_init__(self) -> None:
        require(self.max_new_tokens > 0, "max_new_tokens", f"must be positive, got {self.max_new_tokens}")
        require(self.temperature >= 0, "temperature", f"must be >= 0 (0 = greedy), got {self.temperature}")
        require(self.top_k is None or self.top_k > 0, "top_k", f"must be positive or null, got {self.top_k}")
        require(self.top_p is None or 0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p}")
        require(all(isinstance(s, str) and s for s in self.stop), "stop",
                f"stop strings must be non-empty strings, got {self.stop!r}")

    @property
    def is_greedy(self) -> bool:
        """True when decoding is deterministic argmax."""
        return self.greedy or self.temperature == 0


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Scale logits (B, V) by 1/temperature, then mask all but the top-k and the top-p nucleus with -inf.

    Returns a new tensor (the input is not modified). ``temperature`` must be
    > 0 here; greedy decoding is handled by :func:`next_token`.
    """
    if temperature <= 0:
        raise ValueError(f"filter_logits needs temperature > 0, got {temperature}; use argmax for greedy")
    logits = logits / temperature if temperature != 1.0 else logits.clone()
    vocab = logits.shape[-1]
    if top_k is not None and top_k < vocab:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1): the k-th largest value
        logits.masked_fill_(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p; the first is always kept.
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        logits.masked_fill_(drop, float("-inf"))
    return logits


def next_token(logits: torch.Tensor, cfg: SamplingConfig,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token id per row from logits (B, V) -> (B,) int64.

    Greedy (``cfg.greedy`` or temperature 0) is argmax; otherwise a draw from
    the filtered distribution using ``generator`` (None: torch's global RNG).
    """
    if cfg.is_greedy:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits.float(), cfg.temperature, cfg.top_k, cfg.top_p).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
