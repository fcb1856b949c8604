"""QuantizedLinear: int4 packing and dequantization against pure-Python loops, scales against hand-computed
values, round-to-nearest against a naive loop, save -> load bit-identical, and the dynamic int8 kernel
within a worst-case bound derived from the two roundings."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model

from fromzero.errors import ConfigError
from fromzero.nn import Linear
from fromzero.nn.quantized_linear import QuantizedLinear, check_mode, pack_int4, unpack_int4


def _naive_pack(values: list[list[int]]) -> list[list[int]]:
    """Two values per byte: column 2j low nibble, 2j+1 high nibble, each + 8; an odd tail padded with 0."""
    rows = []
    for row in values:
        padded = row + [0] if len(row) % 2 else row
        rows.append([(padded[j] + 8) | ((padded[j + 1] + 8) << 4) for j in range(0, len(padded), 2)])
    return rows


def test_int4_packing_equals_a_naive_loop_and_unpacks_back() -> None:
    g = torch.Generator().manual_seed(0)
    for cols in (1, 6, 7):
        values = torch.randint(-8, 8, (3, cols), generator=g)
        packed = pack_int4(values)
        assert packed.dtype == torch.uint8 and packed.shape == (3, (cols + 1) // 2)
        assert packed.tolist() == _naive_pack(values.tolist())
        assert torch.equal(unpack_int4(packed, cols), values.to(torch.int8))
    with pytest.raises(ValueError):
        pack_int4(torch.tensor([[8]]))


def test_group_scales_and_integers_equal_a_hand_computation() -> None:
    # rows of two groups of 2 columns; int4: s = max|w| / 7 per (row, group); an all-zero group gets s = 1
    w = torch.tensor([[1.4, -0.6, 0.35, -0.7], [0.0, 0.0, -2.1, 0.9]])
    layer = QuantizedLinear.from_linear(_linear_with(w), "weight-int4", 2)
    torch.testing.assert_close(layer.scales, torch.tensor([[0.2, 0.1], [1.0, 0.3]]))
    assert layer.int_weight().tolist() == [[7, -3, 4, -7], [0, 0, -7, 3]]  # 0.35/0.1 = 3.5 -> 4 (half to even)
    int8 = QuantizedLinear.from_linear(_linear_with(w), "weight-int8", None)  # per channel: max|row| / 127
    torch.testing.assert_close(int8.scales, torch.tensor([1.4 / 127, 2.1 / 127]))
    assert int8.int_weight().tolist() == [[127, -54, 32, -64], [0, 0, -127, 54]]


def _linear_with(weight: torch.Tensor, bias: bool = False) -> Linear:
    layer = Linear(weight.shape[1], weight.shape[0], bias=bias)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


@pytest.mark.parametrize(("mode", "group"), [("weight-int4", 4), ("weight-int4", None), ("weight-int8", 6),
                                             ("dynamic-int8", None)])
def test_rtn_and_dequantization_equal_a_naive_loop(mode: str, group: int | None) -> None:
    torch.manual_seed(0)
    linear = Linear(12, 5)
    layer = QuantizedLinear.from_linear(linear, mode, group)
    q_max = 7 if mode == "weight-int4" else 127
    w = linear.weight.detach().tolist()
    for i in range(5):
        for j in range(12):
            cols = range(12) if group is None else range(j // group * group, j // group * group + group)
            s = max(abs(w[i][k]) for k in cols) / q_max
            q = max(-q_max, min(q_max, round(w[i][j] / s)))  # Python's round is half-to-even, like torch.round
            assert int(layer.int_weight()[i, j]) == q
            assert float(layer.dequantize()[i, j]) == pytest.approx(s * q, rel=1e-6)
    assert torch.equal(layer.bias, linear.bias)


@pytest.mark.parametrize(("mode", "group"), [("dynamic-int8", None), ("weight-int8", 8), ("weight-int4", 8),
                                             ("weight-int4", None)])
def test_save_load_round_trip_is_bit_identical(mode: str, group: int | None, tmp_path: Path) -> None:
    torch.manual_seed(0)
    layer = QuantizedLinear.from_linear(Linear(24, 10), mode, group)
    holder, loaded = torch.nn.Sequential(layer), torch.nn.Sequential(QuantizedLinear.empty(24, 10, True, mode, group))
    save_model(holder, str(tmp_path / "q.safetensors"))
    missing, unexpected = load_model(loaded, str(tmp_path / "q.safetensors"), strict=True)
    assert not missing and not unexpected
    for (k, a), (k2, b) in zip(holder.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and a.dtype == b.dtype and torch.equal(a, b)
    x = torch.randn(3, 7, 24)
    with torch.no_grad():
        assert torch.equal(holder(x), loaded(x))
    assert set(holder.state_dict()) == {"0.weight_q", "0.scales", "0.bias"}


def test_int4_file_really_shrinks(tmp_path: Path) -> None:
    linear = Linear(256, 64, bias=False)
    save_model(torch.nn.Sequential(linear), str(tmp_path / "f.safetensors"))
    save_model(torch.nn.Sequential(QuantizedLinear.from_linear(linear, "weight-int4", 128)), str(tmp_path / "q"))
    assert (tmp_path / "q").stat().st_size < (tmp_path / "f.safetensors").stat().st_size / 7


def test_dynamic_int8_is_within_the_rounding_bound() -> None:
    """|x^ w^ - x w| <= |dx| |w| + |x| |dw| + |dx| |dw| per output, with |dw| <= s_w / 2 (weights) and
    |dx| <= r / 127 per token (the kernel's 7-bit asymmetric activations over [min, max] of the token
    scaled to max|x| = r: one step, allowing for its rounded zero point). A kernel quantizing the whole
    batch with one scale, or a wrong rescale, breaks the bound for the small-norm tokens."""
    torch.manual_seed(0)
    linear = Linear(64, 48)
    layer = QuantizedLinear.from_linear(linear, "dynamic-int8", None)
    x = torch.randn(2, 9, 64) * torch.logspace(-2, 1, 9)[None, :, None]  # tokens 1000x apart in size
    with torch.no_grad():
        got, want = layer(x), linear(x)
    r = x.abs().amax(-1, keepdim=True)
    dx = 2 * r / 127  # (max - min) / 127 over a token after scaling, bounded by 2 r / 127
    dw = layer.scales / 2  # (out,)
    bound = dx * linear.weight.detach().abs().sum(1) + x.abs().sum(-1, keepdim=True) * dw + dx * 64 * dw
    assert ((got - want).abs() <= bound * 1.001 + 1e-6).all()
    assert not torch.equal(got, want)  # really computed from integers
    one = x[1, 4]
    with torch.no_grad():
        torch.testing.assert_close(layer(one), layer(one[None, None])[0, 0])  # one token: same path


def test_packed_weight_follows_loaded_values() -> None:
    torch.manual_seed(0)
    a = QuantizedLinear.from_linear(Linear(16, 8), "dynamic-int8", None)
    b = QuantizedLinear.from_linear(Linear(16, 8), "dynamic-int8", None)
    x = torch.randn(4, 16)
    with torch.no_grad():
        before = a(x)  # builds a's packed weight
        a.load_state_dict(b.state_dict())  # in-place copies: the packed weight must be rebuilt
        assert torch.equal(a(x), b(x)) and not torch.equal(a(x), before)
        assert torch.equal(copy.deepcopy(a)(x), b(x))


def test_simulated_path_matches_per_token_int8_reference() -> None:
    torch.manual_seed(0)
    linear = Linear(32, 6)
    layer = QuantizedLinear.from_linear(linear, "dynamic-int8", None).double()
    x = torch.randn(5, 32, dtype=torch.float64)
    with torch.no_grad():
        got = layer(x)  # float64: not the kernel's dtype, so the floating-point simulation runs
    sx = x.abs().amax(-1, keepdim=True) / 127
    want = F.linear(torch.round(x / sx) * sx, layer.dequantize()) + layer.bias
    torch.testing.assert_close(got, want)


def test_bad_group_size_and_mode_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="--group-size 5 does not divide the 12 input features of blocks.0"):
        check_mode("weight-int4", 12, 5, where="blocks.0")
    with pytest.raises(ConfigError, match="--mode"):
        QuantizedLinear.empty(4, 4, True, "int3", None)
    with pytest.raises(ConfigError, match="dynamic-int8 uses one scale per output channel"):
        QuantizedLinear.from_linear(Linear(8, 4), "dynamic-int8", 4)
