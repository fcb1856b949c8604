"""UNetBody: input-sized output for odd sizes (1x1 included), ceil-halving levels, and a forward pass
rebuilt from the paper's equations with naive pooling and a naive transposed convolution."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fromzero.nn.unet import UNetBody

ODD_SIZES = [(1, 1), (27, 33), (5, 2), (31, 17), (3, 64), (9, 9)]


@pytest.mark.parametrize("up", ["transpose", "bilinear"])
@pytest.mark.parametrize("size", ODD_SIZES)
def test_output_has_the_input_size(size: tuple[int, int], up: str) -> None:
    torch.manual_seed(0)
    body = UNetBody(2, 5, widths=[4, 8, 8, 16], up=up).eval()  # three poolings: 27 -> 14 -> 7 -> 4
    out = body(torch.randn(2, 2, *size))
    assert out.shape == (2, 5, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("widths", [[4], [4, 8], [4, 8, 8, 8, 8, 8]])
def test_any_depth_keeps_the_size_and_trains(widths: list[int]) -> None:
    body = UNetBody(1, 3, widths=widths)  # train mode: BatchNorm uses batch statistics
    x = torch.randn(2, 1, 13, 7)
    out = body(x)
    assert out.shape == (2, 3, 13, 7)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in body.parameters())


def test_levels_halve_with_ceiling() -> None:
    body = UNetBody(1, 2, widths=[2, 2, 2, 2]).eval()
    seen: list[tuple[int, int]] = []
    for stage in body.down:
        stage.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:])))
    body(torch.randn(1, 1, 27, 33))
    expected, (h, w) = [], (27, 33)
    for _ in range(4):
        expected.append((h, w))
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    assert seen == expected == [(27, 33), (14, 17), (7, 9), (4, 5)]


def naive_max_pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling of a map padded with -inf to even size: an odd last row/column pools alone."""
    h, w = x.shape[-2:]
    x = F.pad(x, (0, w % 2, 0, h % 2), value=-math.inf)
    b, c, hh, ww = x.shape
    return x.reshape(b, c, hh // 2, 2, ww // 2, 2).amax(dim=(3, 5))


def naive_up_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """2x2 stride-2 transposed conv: each input pixel writes a 2x2 block sum_c x[c] W[c, o, di, dj] + b[o]."""
    b, _, h, w = x.shape
    out = torch.zeros(b, weight.shape[1], 2 * h, 2 * w)
    for di in range(2):
        for dj in range(2):
            out[:, :, di::2, dj::2] = torch.einsum("bchw,co->bohw", x, weight[:, :, di, dj])
    return out + bias.view(1, -1, 1, 1)


@torch.no_grad()
def test_forward_matches_the_equations_with_naive_ops() -> None:
    torch.manual_seed(1)
    body = UNetBody(3, 4, widths=[4, 6, 8]).eval()
    for p in body.parameters():  # random values everywhere, biases included
        p.copy_(torch.randn_like(p) * 0.3)
    x = torch.randn(2, 3, 11, 6)
    e0 = body.down[0](x)
    e1 = body.down[1](naive_max_pool(e0))  # (6, 3)
    e2 = body.down[2](naive_max_pool(e1))  # (3, 2)
    d = e2
    for stage, skip in zip(body.up, [e1, e0], strict=True):
        up = naive_up_conv(d, stage.up.weight, stage.up.bias)[..., : skip.shape[-2], : skip.shape[-1]]
        d = stage.conv(torch.cat([skip, up], dim=1))
    expected = F.conv2d(d, body.head.weight, body.head.bias)
    torch.testing.assert_close(body(x), expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_bilinear_path_resizes_to_the_skip_exactly() -> None:
    torch.manual_seed(2)
    body = UNetBody(1, 2, widths=[3, 5], up="bilinear").eval()
    x = torch.randn(1, 1, 7, 5)
    e0 = body.down[0](x)
    e1 = body.down[1](naive_max_pool(e0))  # (4, 3)
    stage = body.up[0]
    up = F.conv2d(F.interpolate(e1, size=(7, 5), mode="bilinear", align_corners=False), stage.up.weight,
                  stage.up.bias)
    expected = body.head(stage.conv(torch.cat([e0, up], dim=1)))
    torch.testing.assert_close(body(x), expected)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="widths"):
        UNetBody(1, 2, widths=[])
    with pytest.raises(ValueError, match="up mode"):
        UNetBody(1, 2, widths=[4], up="nearest")
