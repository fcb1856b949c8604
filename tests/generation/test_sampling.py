"""Sampling: config validation, top-k / top-p filtering against naive references, greedy, seeds."""

from __future__ import annotations

import pytest
import torch

from fromzero.config import InvalidValue, from_dict
from fromzero.errors import ConfigError
from fromzero.generation import SamplingConfig, filter_logits, next_token, sample_rows
from fromzero.generation.sampling import draw


def naive_keep(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> list[set[int]]:
    """Reference: per row, sort by probability and keep the top k, then the smallest prefix with mass >= p."""
    kept = []
    for row in logits.tolist():
        order = sorted(range(len(row)), key=lambda i: -row[i])
        if top_k is not None:
            order = order[:top_k]
        if top_p is not None:
            probs = torch.tensor([row[i] for i in order]).softmax(0).tolist()
            total, prefix = 0.0, []
            for i, p in zip(order, probs, strict=True):
                prefix.append(i)
                total += p
                if total >= top_p:
                    break
            order = prefix
        kept.append(set(order))
    return kept


def finite(logits: torch.Tensor) -> list[set[int]]:
    return [set(torch.nonzero(torch.isfinite(row)).flatten().tolist()) for row in logits]


def test_config_defaults_and_validation() -> None:
    cfg = SamplingConfig()
    assert (cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p, cfg.stop) == (200, 1.0, None, None, [])
    assert not cfg.is_greedy and SamplingConfig(temperature=0).is_greedy and SamplingConfig(greedy=True).is_greedy
    for bad in [{"max_new_tokens": 0}, {"temperature": -0.1}, {"top_k": 0}, {"top_p": 0.0},
                {"top_p": 1.5}, {"stop": [""]}]:
        with pytest.raises(InvalidValue):
            SamplingConfig(**bad)
    with pytest.raises(ConfigError, match="sampling.top_p"):
        from_dict(SamplingConfig, {"top_p": 2.0}, prefix="sampling")
    assert from_dict(SamplingConfig, {"stop": ["\n\n"], "seed": 3}).stop == ["\n\n"]


@pytest.mark.parametrize("top_k", [1, 3, 10])
def test_top_k_keeps_exactly_the_k_largest(top_k: int) -> None:
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(top_k))
    out = filter_logits(logits, top_k=top_k)
    assert finite(out) == naive_keep(logits, top_k, None)
    kept = out[torch.isfinite(out)]
    assert torch.equal(kept, logits[torch.isfinite(out)])  # surviving logits unchanged


@pytest.mark.parametrize("top_p", [1e-6, 0.3, 0.75, 0.95, 1.0])
def test_top_p_matches_naive_sorted_cumsum(top_p: float) -> None:
    logits = 2 * torch.randn(8, 50, generator=torch.Generator().manual_seed(1))
    assert finite(filter_logits(logits, top_p=top_p)) == naive_keep(logits, None, top_p)


def test_top_k_then_top_p_and_temperature() -> None:
    logits = torch.randn(5, 30, generator=torch.Generator().manual_seed(2))
    out = filter_logits(logits, temperature=0.7, top_k=8, top_p=0.6)
    assert finite(out) == naive_keep(logits / 0.7, 8, 0.6)
    assert torch.allclose(filter_logits(logits, temperature=2.0), logits / 2)
    before = logits.clone()
    filter_logits(logits, top_k=2, top_p=0.5)
    assert torch.equal(logits, before)  # input untouched


def test_most_likely_token_always_survives() -> None:
    logits = torch.randn(4, 20, generator=torch.Generator().manual_seed(3))
    out = filter_logits(logits, top_k=1, top_p=1e-9)
    assert finite(out) == [{int(i)} for i in logits.argmax(-1)]


def test_sampled_tokens_stay_in_top_k_over_many_seeds() -> None:
    logits = torch.randn(16, 64, generator=torch.Generator().manual_seed(4))
    allowed = torch.topk(logits, 5, dim=-1).indices
    cfg = SamplingConfig(top_k=5, temperature=1.5)
    for seed in range(50):
        tokens = next_token(logits, cfg, torch.Generator().manual_seed(seed))
        assert (allowed == tokens[:, None]).any(-1).all()


def test_sampling_follows_the_softmax_distribution() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, 4)
    tokens = next_token(logits, SamplingConfig(temperature=1.0), torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=4).float() / tokens.numel()
    assert torch.allclose(freq, logits[0].softmax(0), atol=0.015)


def test_greedy_and_temperature_zero_are_argmax() -> None:
    logits = torch.randn(7, 33)
    expected = logits.argmax(-1)
    assert torch.equal(next_token(logits, SamplingConfig(greedy=True, temperature=5.0)), expected)
    assert torch.equal(next_token(logits, SamplingConfig(temperature=0.0, top_k=3)), expected)
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(logits, temperature=0.0)


def test_seeds_reproduce_and_differ() -> None:
    logits = torch.zeros(32, 100)  # uniform: every draw is pure randomness
    cfg = SamplingConfig(top_p=0.9)
    a = next_token(logits, cfg, torch.Generator().manual_seed(7))
    b = next_token(logits, cfg, torch.Generator().manual_seed(7))
    c = next_token(logits, cfg, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_draw_is_multinomial_and_rows_with_their_own_generators_are_independent() -> None:
    """draw() gives torch.multinomial's token for the same seed (so seeds keep their tokens), one shared
    generator or one per row; a row of sample_rows depends only on its own logits, config and generator."""
    probs = torch.softmax(3 * torch.randn(4, 50, generator=torch.Generator().manual_seed(5)), -1)
    probs[:, 7:19] = 0.0  # filtered tokens
    for seed in range(40):
        expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed)).squeeze(-1)
        assert torch.equal(draw(probs, [torch.Generator().manual_seed(seed)]), expected)
        per_row = draw(probs, [torch.Generator().manual_seed(seed + r) for r in range(4)])
        alone = [int(torch.multinomial(probs[r:r + 1], 1, generator=torch.Generator().manual_seed(seed + r)))
                 for r in range(4)]
        assert per_row.tolist() == alone and not set(per_row.tolist()) & set(range(7, 19))
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(6))
    cfgs = [SamplingConfig(top_k=5, seed=1), SamplingConfig(greedy=True), SamplingConfig(top_p=0.8, seed=2)]
    batch = sample_rows(logits, cfgs, [torch.Generator().manual_seed(1), None, torch.Generator().manual_seed(2)])
    for r, cfg in enumerate(cfgs):
        gen = torch.Generator().manual_seed(cfg.seed) if cfg.seed is not None else None
        assert int(batch[r]) == int(next_token(logits[r:r + 1], cfg, gen))
