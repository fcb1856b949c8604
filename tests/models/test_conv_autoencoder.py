"""The convolutional autoencoder (family ``conv-autoencoder``): shapes, the bottleneck, one-line config errors,
and, on a tiny synthetic image set, a reconstruction error below the mean-image baseline within seconds."""

from __future__ import annotations

import pytest
import torch

from fromzero.errors import ConfigError, DataError
from fromzero.models import create_model, model_config
from fromzero.objectives.denoising import Denoising


@pytest.mark.parametrize("up", ["transpose", "upsample"])
def test_shapes_and_the_bottleneck(up: str) -> None:
    torch.manual_seed(0)
    model = create_model("conv-autoencoder", in_channels=3, image_size=16, widths=[4, 8, 8], d_z=6, up=up).eval()
    x = torch.rand(5, 3, 16, 16)
    z = model.embed(x)
    assert z.shape == (5, 6)
    assert model.encoder(x).shape == (5, 8, 2, 2)  # three halvings: 16 -> 2
    out = model(x)
    assert out.shape == x.shape and out.min() > 0 and out.max() < 1  # sigmoid output
    torch.testing.assert_close(out, model.reconstruct(z))  # the decoder sees z alone
    sizes = []
    g = torch.zeros(1, 8, 2, 2)
    for stage in model.decoder:
        g = stage(g)
        sizes.append(g.shape[-1])
    assert sizes == [4, 8, 16]  # each decoder stage doubles the size


def test_preset_is_the_fashion_shape() -> None:
    model = create_model("conv-autoencoder-fashion").eval()
    assert model.embed(torch.rand(2, 1, 28, 28)).shape == (2, 32)
    assert model.encoder(torch.rand(2, 1, 28, 28)).shape == (2, 64, 7, 7)


@pytest.mark.parametrize(("values", "message"), [
    ({"d_z": 0}, "model.d_z: the bottleneck must be positive"),
    ({"image_size": 30}, "model.image_size: 30 is not divisible by 2^2"),
    ({"widths": []}, "model.widths"), ({"up": "pixelshuffle"}, "model.up")])
def test_bad_config_is_a_one_line_error(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("^", r"\^")) as err:
        model_config("conv-autoencoder-fashion", values, file="r.yaml")
    assert "\n" not in str(err.value)


def test_a_wrong_image_size_names_the_model_field() -> None:
    with pytest.raises(DataError, match="model.image_size"):
        create_model("conv-autoencoder-fashion")(torch.rand(1, 1, 32, 32))


def synthetic_images(n: int, seed: int) -> torch.Tensor:
    """(n, 1, 16, 16): one bright rectangle per image, its corners uniform, on a dark background."""
    g = torch.Generator().manual_seed(seed)
    corners = torch.randint(0, 16, (n, 4), generator=g)  # two rows, two columns per image
    r0, r1 = corners[:, 0].minimum(corners[:, 1]), corners[:, 0].maximum(corners[:, 1]) + 1
    c0, c1 = corners[:, 2].minimum(corners[:, 3]), corners[:, 2].maximum(corners[:, 3]) + 1
    ar = torch.arange(16)
    rows = (ar[None] >= r0[:, None]) & (ar[None] < r1[:, None])  # (n, 16)
    cols = (ar[None] >= c0[:, None]) & (ar[None] < c1[:, None])
    return (rows[:, :, None] & cols[:, None, :]).float()[:, None] * 0.9 + 0.05


def test_reconstruction_mse_falls_below_the_mean_image_baseline() -> None:
    torch.manual_seed(0)
    train, test = synthetic_images(512, 1), synthetic_images(128, 2)
    baseline = float(((test - train.mean(0, keepdim=True)) ** 2).mean())  # predict the mean training image
    model = create_model("conv-autoencoder", image_size=16, widths=[8, 16], d_z=8)
    objective = Denoising("mse")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        x = train[torch.randint(0, len(train), (32,), generator=g)]
        out = objective(model, {"pixels": x, "target": x})  # noise sigma 0: a plain autoencoder
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        mse = float(((model(test) - test) ** 2).mean())
    assert mse < 0.5 * baseline, (mse, baseline)
