"""The kernels that mixed precision and fp32 speed rest on, against float64 references:
the sigmoid-form tanh GELU (nn/mlp.py) and norms whose statistics stay fp32 under bf16 (nn/norms.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fromzero.models import create_model
from fromzero.nn import LayerNorm, RMSNorm
from fromzero.nn.mlp import gelu_tanh


def _reference_gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's formula, written out in float64."""
    x = x.double()
    return 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x**3)))


def test_gelu_tanh_value_and_gradient_match_the_formula():
    torch.manual_seed(0)
    x0 = torch.cat([torch.randn(4000) * 3, torch.linspace(-12, 12, 97), torch.tensor([0.0, -0.0])])
    x = x0.clone().requires_grad_()
    grad_out = torch.randn_like(x0)
    y = gelu_tanh(x)
    y.backward(grad_out)
    xr = x0.double().requires_grad_()
    yr = _reference_gelu_tanh(xr)
    yr.backward(grad_out.double())
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.double(), yr.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-5, atol=1e-6)
    # and the float32 answer is as close to float64 as ATen's own float32 kernel is
    xa = x0.clone().requires_grad_()
    F.gelu(xa, approximate="tanh").backward(grad_out)
    ours_err = (x.grad.double() - xr.grad).abs().max()
    aten_err = (xa.grad.double() - xr.grad).abs().max()
    assert ours_err <= 4 * aten_err + 1e-7


def test_gelu_tanh_double_precision_gradcheck():
    from fromzero.nn.mlp import _SigmoidTanhGELU
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_SigmoidTanhGELU.apply, (x,))


def test_gelu_tanh_leaves_inference_and_other_dtypes_to_aten():
    x = torch.randn(3, 40)
    with torch.no_grad():
        assert torch.equal(gelu_tanh(x), F.gelu(x, approximate="tanh"))
    xb = torch.randn(3, 40, dtype=torch.bfloat16, requires_grad=True)
    assert torch.equal(gelu_tanh(xb), F.gelu(xb, approximate="tanh"))


def test_mlp_gradients_unchanged_up_to_rounding():
    """A whole GPT step through the fast GELU equals the same step through ATen's tanh GELU."""
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", n_layer=2, block_size=16)
    x = torch.randint(0, 128, (3, 16))

    def grads(act) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        for block in model.blocks:
            block.mlp.approximate = act
        model(x).logsumexp(-1).mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    fast, aten = grads("tanh"), None
    import fromzero.nn.mlp as mlp_module
    original = mlp_module.gelu_tanh
    try:
        mlp_module.gelu_tanh = lambda h: F.gelu(h, approximate="tanh")
        aten = grads("tanh")
    finally:
        mlp_module.gelu_tanh = original
    for a, b in zip(fast, aten, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("norm_cls", [LayerNorm, RMSNorm])
def test_norm_statistics_of_bf16_input_are_computed_in_fp32(norm_cls):
    torch.manual_seed(0)
    x = (torch.randn(4, 512) + 8).bfloat16()  # a bf16 running sum of 512 such values would be off by ~16
    norm = norm_cls(512)
    x64 = x.double()
    if norm_cls is LayerNorm:
        ref = (x64 - x64.mean(-1, keepdim=True)) / (x64.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
    else:
        ref = x64 / (x64.pow(2).mean(-1, keepdim=True) + norm.eps).sqrt()
    out = norm(x)
    assert out.dtype == torch.bfloat16
    # within bf16 rounding of the float64 answer (bf16 keeps 8 significant bits)
    torch.testing.assert_close(out.double(), ref, rtol=2**-8, atol=2**-9)
