"""fromzero.nn.Linear: the split one-row path equals F.linear; everything else is F.linear."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fromzero.nn import Linear


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 48), (1, 48), (48,)])
def test_single_row_path_matches_f_linear(threads: int, bias: bool, shape: tuple[int, ...]) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        layer = Linear(48, 96, bias=bias)  # 96 is divisible by 1, 2 and 3: the split path runs
        x = torch.randn(shape)
        with torch.no_grad():
            got = layer(x)
        want = F.linear(x, layer.weight, layer.bias)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    finally:
        torch.set_num_threads(before)


def test_training_and_multi_row_inputs_use_the_plain_path() -> None:
    torch.manual_seed(0)
    layer = Linear(8, 6)
    x = torch.randn(1, 8, requires_grad=True)
    layer(x).sum().backward()  # autograd path: gradients flow as for nn.Linear
    assert layer.weight.grad is not None and x.grad is not None
    rows = torch.randn(3, 5, 8)
    with torch.no_grad():
        torch.testing.assert_close(layer(rows), F.linear(rows, layer.weight, layer.bias))
    assert isinstance(layer, torch.nn.Linear)  # LoRA and the optimizer groups see an nn.Linear
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
