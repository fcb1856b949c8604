"""Materialised attention weights are the ones the fused SDPA path applies: A @ V through the module's output
projection equals the module's real output, captured by a forward hook, for GPT (causal, RoPE + grouped
heads in llama-tiny), BERT (bidirectional, padding) and the T5 encoder (no 1/sqrt(d), position bias)."""

from __future__ import annotations

import pytest
import torch

from fromzero.explain.attention_maps import attention_modules, capture_attention, split_heads
from fromzero.models import build_model, model_config

CONFIGS = {
    "gpt": ("gpt-char-tiny", {"vocab_size": 50, "block_size": 16}),
    "llama": ("llama-tiny", {"vocab_size": 50, "block_size": 16, "n_layer": 2}),
    "bert": ("bert-tiny", {"vocab_size": 50, "max_positions": 16, "n_embd": 32, "n_head": 2}),
}


def _model(name: str, overrides: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(model_config(name, overrides)).eval()


def _check(model: torch.nn.Module, run) -> None:
    """Weights @ V (projected) == each attention module's own output, and capturing changes no output."""
    outputs, values = {}, {}
    hooks = []
    for name, module in attention_modules(model):
        def hook(m, args, kwargs, out, name=name):
            _, _, v = split_heads(m, args[0])
            values[name] = v.repeat_interleave(m.n_head // m.n_kv_head, dim=1)
            outputs[name] = out
        hooks.append(module.register_forward_hook(hook, with_kwargs=True))
    plain = run()
    with capture_attention(model) as maps:
        captured = run()
    for h in hooks:
        h.remove()
    torch.testing.assert_close(captured, plain, rtol=0, atol=0)  # the fused path is untouched
    assert set(maps) == set(outputs) and maps
    modules = dict(attention_modules(model))
    for name, weights in maps.items():
        B, H, T, _ = weights.shape
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T), rtol=1e-5, atol=1e-5)
        mixed = (weights @ values[name].float()).transpose(1, 2).reshape(B, T, -1)
        torch.testing.assert_close(modules[name].proj(mixed), outputs[name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_weights_times_values_equal_the_fused_output(family: str) -> None:
    model = _model(*CONFIGS[family])
    ids = torch.randint(3, 50, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0  # padding: masked keys must get weight 0
    with torch.no_grad():
        _check(model, lambda: model.hidden_states(ids, attention_mask=mask))
    with capture_attention(model) as maps, torch.no_grad():
        model.hidden_states(ids, attention_mask=mask)
    first = next(iter(maps.values()))
    assert float(first[1, :, :6, 6:].abs().max()) == 0.0
    if family != "bert":  # causal: no weight on later keys
        assert float(torch.triu(first[0, 0], diagonal=1).abs().max()) == 0.0


def test_t5_encoder_with_position_bias() -> None:
    model = _model("t5-tiny", {"vocab_size": 50})
    ids = torch.randint(3, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[0, 5:] = 0
    with torch.no_grad():
        _check(model, lambda: model.encode(ids, mask))
