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
    > 0 here; greedy decoding is handled by :func:`next_token`. With top-k the
    nucleus is found among the k survivors (``topk`` returns them sorted), so
    only a top-p without top-k sorts the whole vocabulary.
    """
    if temperature <= 0:
        raise ValueError(f"filter_logits needs temperature > 0, got {temperature}; use argmax for greedy")
    logits = logits / temperature if temperature != 1.0 else logits.clone()
    vocab = logits.shape[-1]
    ranked = None  # (values, token ids) of the candidates, largest first
    if top_k is not None and top_k < vocab:
        ranked = torch.topk(logits, top_k, dim=-1)
        logits.masked_fill_(logits < ranked.values[..., -1:], float("-inf"))  # below the k-th largest
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = ranked if ranked is not None else torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p; the first is always kept.
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, order, drop_sorted)
        logits.masked_fill_(drop, float("-inf"))
    return logits


def next_token(logits: torch.Tensor, cfg: SamplingConfig,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token id per row from logits (B, V) -> (B,) int64.

    Greedy (``cfg.greedy`` or temperature 0) is argmax; otherwise a draw from
    the filtered distribution using ``generator`` (None: torch's global RNG)
    for every row.
    """
    if cfg.is_greedy:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits.float(), cfg.temperature, cfg.top_k, cfg.top_p).softmax(dim=-1)
    return draw(probs, [generator])


def draw(probs: torch.Tensor, generators: list[torch.Generator | None]) -> torch.Tensor:
    """One index per row of probs (B, V) (weights >= 0), drawn in proportion to them -> (B,) int64.

    The exponential race: with E_i ~ Exp(1) independent, argmax_i p_i / E_i is i with probability
    p_i / sum(p). It is what ``torch.multinomial(probs, 1)`` computes (its one-sample path, so a seed
    gives the same tokens as before), without multinomial's pass validating the input, which cost more
    than the draw. One generator draws every row's E; a list of one per row gives each row its own.
    """
    if len(generators) == 1:
        race = torch.empty_like(probs).exponential_(1, generator=generators[0])
    else:
        race = torch.cat([torch.empty_like(probs[:1]).exponential_(1, generator=g) for g in generators])
    return (probs / race).argmax(dim=-1)


def sample_rows(logits: torch.Tensor, cfgs: list[SamplingConfig],
                generators: list[torch.Generator | None]) -> torch.Tensor:
    """One token per row of logits (n, V), row r drawn as ``cfgs[r]`` says with its own ``generators[r]``.

    A row's token depends only on its logits, its config and its generator, never on the other rows, so a
    seeded sequence samples the same tokens whatever shares its batch: its own generator drawing for its
    row alone is what :func:`next_token` does for that row alone. Rows with equal settings are filtered
    together.
    """
    if all(cfg is cfgs[0] for cfg in cfgs):  # one config for the batch (generate_tokens): no grouping
        return _sample_group(logits, cfgs[0], generators)
    groups: dict[tuple, list[int]] = {}
    for r, cfg in enumerate(cfgs):
        key = (True,) if cfg.is_greedy else (False, cfg.temperature, cfg.top_k, cfg.top_p)
        groups.setdefault(key, []).append(r)
    if len(groups) == 1:
        return _sample_group(logits, cfgs[0], generators)
    out = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
    for rows in groups.values():
        idx = torch.tensor(rows, device=logits.device)
        out[idx] = _sample_group(logits.index_select(0, idx), cfgs[rows[0]], [generators[r] for r in rows])
    return out


def _sample_group(logits: torch.Tensor, cfg: SamplingConfig, generators: list[torch.Generator | None]) -> torch.Tensor:
    if cfg.is_greedy:
        return logits.argmax(dim=-1)
    if len(generators) == 1 or all(g is None for g in generators):
        return next_token(logits, cfg, generators[0])
    probs = filter_logits(logits.float(), cfg.temperature, cfg.top_k, cfg.top_p).softmax(dim=-1)
    return draw(probs, generators)
