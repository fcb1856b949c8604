"""The fcn, unet and denoiser families: presets, input-sized output for odd sizes, FCN's skip fusion by
its equations, residual denoising (hooked), the identity at zero init, and tiny overfitting runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fromzero.errors import ConfigError
from fromzero.models import denoiser, fcn, unet  # noqa: F401  (registers the families)
from fromzero.models.registry import build_model, create_model, model_config
from fromzero.objectives.denoising import Denoising
from fromzero.objectives.segmentation import Segmentation

ODD_SIZES = [(1, 1), (27, 33), (5, 2), (17, 31)]


@pytest.mark.parametrize("name", ["fcn-small", "unet-small"])
def test_segmenter_presets_on_canvases(name: str) -> None:
    model = create_model(name).eval()
    assert (model.config.in_channels, model.config.num_classes) == (1, 11)
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 11, 64, 64)


@pytest.mark.parametrize("size", ODD_SIZES)
@pytest.mark.parametrize("family,overrides", [
    ("fcn", {"widths": [4, 4, 8, 8, 8], "head_width": 8, "score_levels": 3}),
    ("fcn", {"widths": [4, 8], "head_width": 8, "score_levels": 1}),
    ("unet", {"widths": [4, 8, 8], "up": "bilinear"}),
    ("unet", {"widths": [4, 8, 8, 8]}),
])
def test_segmenters_keep_odd_sizes(family: str, overrides: dict, size: tuple[int, int]) -> None:
    model = create_model(family, in_channels=3, num_classes=4, **overrides).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *size)).shape == (2, 4, *size)


@torch.no_grad()
def test_fcn8s_fuses_strides_32_16_8_by_the_equations() -> None:
    torch.manual_seed(0)
    model = create_model("fcn", in_channels=1, num_classes=3, widths=[2, 3, 4, 5, 6], head_width=4).eval()
    for layer in model.skip_scores:  # they start at zero (the paper); give them values to see them
        layer.weight.normal_()
    x = torch.randn(1, 1, 45, 37)
    pools = []
    for stage in model.stages:
        pools.append(stage(pools[-1] if pools else x))
    p3, p4, p5 = pools[2], pools[3], pools[4]
    assert [p.shape[-2:] for p in (p3, p4, p5)] == [(6, 5), (3, 3), (2, 2)]  # ceil(45 / 8) = 6, ...

    def up(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(s, size=like.shape[-2:], mode="bilinear", align_corners=False)

    s32 = model.score(model.head(p5))
    s16 = model.skip_scores[0](p4) + up(s32, p4)
    s8 = model.skip_scores[1](p3) + up(s16, p3)
    torch.testing.assert_close(model(x), up(s8, x))


def test_fcn_skip_scores_start_at_zero() -> None:
    model = create_model("fcn-small")
    assert len(model.skip_scores) == 2
    assert all(not layer.weight.detach().any() for layer in model.skip_scores)


@pytest.mark.parametrize("key,value", [("score_levels", 4), ("num_classes", 1), ("widths", []),
                                       ("dropout", 1.0)])
def test_fcn_config_errors_name_the_key(key: str, value: object) -> None:
    overrides = {"widths": [4, 8, 8], key: value} if key != "widths" else {key: value}
    with pytest.raises(ConfigError, match=f"model.{key}"):
        model_config("fcn", overrides)


@pytest.mark.parametrize("name,key,value", [("unet-small", "widths", [8, 0]), ("dncnn-small", "depth", 1),
                                            ("denoise-unet-small", "in_channels", 0), ("unet", "up", "nearest")])
def test_other_config_errors_name_the_key(name: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"model.{key}"):
        model_config(name, {key: value})


def test_dncnn_layers_follow_the_paper() -> None:
    model = create_model("dncnn-small")
    assert (model.config.depth, model.config.width, model.config.in_channels) == (10, 48, 1)
    layers = [m for m in model.net.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU))]
    kinds = ["conv" if isinstance(m, nn.Conv2d) else "bn" if isinstance(m, nn.BatchNorm2d) else "relu"
             for m in layers]
    assert kinds == ["conv", "relu"] + ["conv", "bn", "relu"] * 8 + ["conv"]  # conv-ReLU, (conv-BN-ReLU) x 8, conv
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in (convs[0], convs[-1])] == \
        [(1, 48, (3, 3)), (48, 1, (3, 3))]


@pytest.mark.parametrize("name", ["dncnn-small", "denoise-unet-small"])
def test_denoiser_returns_input_minus_hooked_residual(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=3, zero_init_last=False).eval()
    hooked: list[torch.Tensor] = []
    model.net.register_forward_hook(lambda _m, _i, out: hooked.append(out.detach().clone()))
    noisy = torch.rand(2, 3, 19, 26)
    with torch.no_grad():
        clean = model(noisy)
    assert clean.shape == noisy.shape and len(hooked) == 1
    assert hooked[0].abs().max() > 1e-3  # a real residual, so the check below can fail
    torch.testing.assert_close(clean, noisy - hooked[0])


@pytest.mark.parametrize("arch", ["dncnn", "unet"])
def test_zero_initialised_last_layer_is_the_identity(arch: str) -> None:
    shape = {"arch": arch, "depth": 4, "width": 8, "widths": [4, 8]}
    model = build_model(model_config("denoiser", shape))  # zero_init_last is the default
    noisy = torch.rand(2, 1, 15, 9)
    assert torch.equal(model(noisy), noisy)  # train mode too: the zero conv ignores its input
    random_last = build_model(model_config("denoiser", {**shape, "zero_init_last": False}))
    assert not torch.equal(random_last(noisy), noisy)


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """One 20x20 image: a bright square (class 1) and a mid-grey disc (class 2) on a faint noisy background."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(20), torch.arange(20), indexing="ij")
    mask = torch.zeros(20, 20, dtype=torch.long)
    mask[3:9, 2:10] = 1
    mask[(yy - 13) ** 2 + (xx - 13) ** 2 <= 16] = 2
    image = torch.tensor([0.0, 1.0, 0.5])[mask] + 0.05 * torch.randn(20, 20, generator=gen)
    return image.view(1, 1, 20, 20), mask.view(1, 20, 20)


def fit(model, objective, batch: dict, lr: float, steps: int = 40) -> None:
    """``steps`` Adam steps of ``objective`` on one fixed batch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        out = objective(model, batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()


def test_tiny_unet_overfits_one_mask() -> None:
    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=3, widths=[8, 16])
    image, mask = _scene()
    batch = {"pixels": image, "masks": mask}
    objective = Segmentation(dice_weight=0.5)
    first = objective(model, batch).metrics["pixel_accuracy"].item()
    fit(model, objective, batch, lr=1e-2)
    model.eval()
    with torch.no_grad():
        acc = (model(image).argmax(1) == mask).float().mean().item()
    assert acc > 0.95 and acc > first


def test_tiny_dncnn_reduces_mse_on_a_noisy_patch() -> None:
    torch.manual_seed(0)
    model = create_model("denoiser", arch="dncnn", depth=4, width=16)
    gen = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 24), indexing="ij")
    clean = (0.5 + 0.3 * torch.sin(6 * xx) * torch.cos(4 * yy)).view(1, 1, 24, 24)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=gen)
    batch = {"pixels": noisy, "target": clean}
    objective = Denoising()
    fit(model, objective, batch, lr=3e-3)
    model.eval()
    with torch.no_grad():
        after = F.mse_loss(model(noisy), clean).item()
    noise_mse = F.mse_loss(noisy, clean).item()  # the untrained model's (it starts as the identity)
    assert after < 0.5 * noise_mse
