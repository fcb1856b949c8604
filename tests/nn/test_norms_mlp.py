"""Norms and feed-forward networks against torch.nn and hand-written formulas."""

from __future__ import annotations

import math

import pytest
import torch

from fromzero.nn import MLP, LayerNorm, RMSNorm, SwiGLU, make_norm, swiglu_hidden


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch(bias):
    torch.manual_seed(0)
    ours, ref = LayerNorm(24, eps=1e-5, bias=bias), torch.nn.LayerNorm(24, eps=1e-5, bias=bias)
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
        if bias:
            ours.bias.normal_()
            ref.bias.copy_(ours.bias)
    x = torch.randn(3, 5, 24) * 4 + 2
    assert torch.allclose(ours(x), ref(x), atol=1e-5)
    assert (ours.bias is None) == (not bias)


def test_rmsnorm_formula():
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(4, 16) * 3
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    assert torch.allclose(norm(x), expected, atol=1e-5)
    # low-precision input keeps its dtype (computed in fp32 inside)
    y = norm(x.bfloat16())
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float(), expected, atol=0.05, rtol=0.02)


def test_make_norm():
    assert isinstance(make_norm("layernorm", 8, 1e-5), LayerNorm)
    assert isinstance(make_norm("rmsnorm", 8, 1e-6), RMSNorm)
    assert make_norm("layernorm", 8, 1e-5, bias=False).bias is None
    with pytest.raises(ValueError):
        make_norm("batchnorm", 8, 1e-5)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def test_mlp_formula():
    torch.manual_seed(0)
    mlp = MLP(12, 48).eval()
    with torch.no_grad():
        mlp.fc.bias.normal_()
        mlp.proj.bias.normal_()
    x = torch.randn(2, 5, 12)
    h = gelu_tanh(x @ mlp.fc.weight.T + mlp.fc.bias)
    expected = h @ mlp.proj.weight.T + mlp.proj.bias
    assert torch.allclose(mlp(x), expected, atol=1e-5)
    assert mlp.proj.is_residual_projection


def test_swiglu_formula():
    torch.manual_seed(0)
    ffn = SwiGLU(12, 32).eval()
    assert ffn.gate.bias is None and ffn.up.bias is None and ffn.proj.bias is None
    x = torch.randn(2, 5, 12)
    g = x @ ffn.gate.weight.T
    expected = (g * torch.sigmoid(g) * (x @ ffn.up.weight.T)) @ ffn.proj.weight.T
    assert torch.allclose(ffn(x), expected, atol=1e-5)


def test_swiglu_hidden():
    # Llama-7B: dim 4096 -> 2/3 * 4 * 4096 = 10922.67, rounded up to a multiple of 256 = 11008
    assert swiglu_hidden(4096) == 11008  # the default multiple is Llama's 256
    assert swiglu_hidden(4096, multiple_of=64) == 10944  # 10922 -> next multiple of 64
    assert swiglu_hidden(256) == 768
