"""Image classifier families (cnn, resnet, inception, vit): shapes, torchvision parameter counts by hand,
BatchNorm train/eval statistics, patch embedding against a naive reference, config errors, and that a tiny
model of each family fits 16 random images."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fromzero.config import from_dict, to_dict
from fromzero.errors import ConfigError, DataError
from fromzero.models import create_model, list_models, model_config
from fromzero.nn.patch_embedding import PatchEmbedding

TINY = {
    "cnn": {"in_channels": 1, "num_classes": 10, "image_size": 16, "channels": [8, 16], "convs_per_stage": 1,
            "hidden": 32, "dropout": 0.0},
    "resnet-basic": {"block": "basic", "layers": [1, 1], "width": 8, "stem": "small", "in_channels": 1,
                     "num_classes": 10},
    "resnet-bottleneck": {"block": "bottleneck", "layers": [1, 1], "width": 4, "stem": "small", "in_channels": 1,
                          "num_classes": 10},
    "inception": {"in_channels": 1, "num_classes": 10, "stem_channels": 8, "dropout": 0.0,
                  "modules": [[4, 4, 8, 2, 4, 4], [8, 4, 8, 2, 4, 4]], "pool_before": [1]},
    "vit": {"image_size": 16, "patch_size": 4, "in_channels": 1, "num_classes": 10, "n_layer": 2, "n_head": 2,
            "n_embd": 32, "mlp_hidden": 64},
}


def tiny(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(kind.split("-")[0], **TINY[kind])


@pytest.mark.parametrize(("name", "shape", "classes"), [
    ("cnn-small", (2, 1, 28, 28), 10), ("resnet-small-w32", (2, 1, 28, 28), 10),
    ("resnet18-small", (2, 1, 28, 28), 10), ("inception-small", (2, 1, 28, 28), 10),
    ("vit-tiny-fashion", (2, 1, 28, 28), 10), ("resnet18", (2, 3, 64, 64), 1000),
    ("googlenet", (1, 3, 64, 64), 1000),
])
def test_presets_map_images_to_logits_and_features(name, shape, classes):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        logits, feats = model(x), model.features(x)
    assert logits.shape == (shape[0], classes) and torch.isfinite(logits).all()
    assert feats.dim() == 2 and feats.shape[0] == shape[0]
    assert torch.allclose(model.head(feats), logits, atol=1e-5)  # the classifier reads exactly the features


def test_every_vision_preset_is_registered_and_round_trips_through_yaml_form():
    names = ["cnn-small", "resnet18", "resnet50", "resnet18-small", "resnet-small-w32", "inception-small",
             "googlenet", "vit-tiny-fashion", "vit-base-patch16-224", "vit-mae-tiny-fashion"]
    assert set(names) <= set(list_models())
    for name in names:
        cfg = model_config(name)
        assert from_dict(type(cfg), to_dict(cfg)) == cfg


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k  # no bias: a BatchNorm follows


def _bn(c: int) -> int:
    return 2 * c


def _torchvision_resnet_count(bottleneck: bool, layers: list[int], classes: int = 1000) -> int:
    """torchvision's ResNet parameter count from its layer table (conv1, bn1, layer1..4, fc), by formula."""
    total, c_in, expansion = _conv(3, 64, 7) + _bn(64), 64, 4 if bottleneck else 1
    for stage, blocks in enumerate(layers):
        width = 64 * 2 ** stage
        for b in range(blocks):
            stride, c_out = (2 if stage and not b else 1), width * expansion
            if bottleneck:
                total += _conv(c_in, width, 1) + _conv(width, width, 3) + _conv(width, c_out, 1)
                total += _bn(width) * 2 + _bn(c_out)
            else:
                total += _conv(c_in, width, 3) + _conv(width, width, 3) + _bn(width) * 2
            if stride != 1 or c_in != c_out:
                total += _conv(c_in, c_out, 1) + _bn(c_out)  # the downsample shortcut
            c_in = c_out
    return total + c_in * classes + classes


@pytest.mark.parametrize(("name", "bottleneck", "layers", "expected"), [
    ("resnet18", False, [2, 2, 2, 2], 11_689_512), ("resnet50", True, [3, 4, 6, 3], 25_557_032),
])
def test_resnet_parameter_counts_equal_torchvision(name, bottleneck, layers, expected):
    assert _torchvision_resnet_count(bottleneck, layers) == expected  # the hand count reproduces torchvision's
    assert sum(p.numel() for p in create_model(name).parameters()) == expected


def test_batchnorm_uses_batch_statistics_in_training_and_running_statistics_in_eval():
    model = tiny("cnn")
    bn = model.body[0][1]
    seen = {}
    # clone: the ReLU after BN runs in place on its output
    bn.register_forward_hook(lambda m, i, o: seen.update(x=i[0].detach().clone(), y=o.detach().clone()))
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.5, 0.5)
    w, b, eps, momentum = bn.weight.detach(), bn.bias.detach(), bn.eps, bn.momentum
    x = torch.randn(8, 1, 16, 16) * 3 + 1
    shape = (1, -1, 1, 1)

    model.eval()
    running = (bn.running_mean, bn.running_var, bn.num_batches_tracked)
    stats = [t.clone() for t in running]
    with torch.no_grad():
        out = model(x)
        ref = (seen["x"] - stats[0].view(shape)) / torch.sqrt(stats[1].view(shape) + eps)
        assert torch.allclose(seen["y"], ref * w.view(shape) + b.view(shape), atol=1e-5)
        assert all(torch.equal(a, t) for a, t in zip(stats, running, strict=True))  # eval leaves them alone
        assert torch.allclose(model(x[:3]), out[:3], atol=1e-5)  # eval: an image's logits ignore its batch

    model.train()
    with torch.no_grad():
        model(x)
    xin = seen["x"]
    mean, var = xin.mean(dim=(0, 2, 3)), xin.var(dim=(0, 2, 3), unbiased=False)
    ref = (xin - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) * w.view(shape) + b.view(shape)
    assert torch.allclose(seen["y"], ref, atol=1e-4)
    n = xin.numel() / xin.shape[1]
    assert torch.allclose(bn.running_mean, (1 - momentum) * stats[0] + momentum * mean, atol=1e-5)
    assert torch.allclose(bn.running_var, (1 - momentum) * stats[1] + momentum * var * n / (n - 1), atol=1e-4)
    assert int(bn.num_batches_tracked) == int(stats[2]) + 1


def test_patch_embedding_equals_a_naive_per_patch_matmul():
    torch.manual_seed(0)
    embed = PatchEmbedding(patch_size=4, in_channels=3, dim=10)
    x = torch.randn(2, 3, 8, 12)
    weight = embed.projection.weight.detach().reshape(10, -1)  # (D, C*p*p), flattened as (C, row, col)
    rows = []
    for i in range(2):
        for j in range(3):
            patch = x[:, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4].reshape(2, -1)  # (B, C*p*p)
            rows.append(patch @ weight.T + embed.projection.bias.detach())
    ref = torch.stack(rows, dim=1)  # (B, L, D), patches row by row
    out = embed(x)
    assert out.shape == (2, 6, 10)
    assert torch.allclose(out, ref, atol=1e-5)
    with pytest.raises(DataError, match="10x12 image does not split into 4x4 patches"):
        embed(torch.randn(1, 3, 10, 12))
    with pytest.raises(DataError, match="3-channel"):
        embed(torch.randn(1, 1, 8, 8))


def test_bad_configs_and_inputs_are_one_line_errors():
    with pytest.raises(ConfigError, match="image_size"):
        create_model("vit", image_size=30, patch_size=4)
    with pytest.raises(ConfigError, match="layers"):
        create_model("resnet", layers=[])
    with pytest.raises(ConfigError, match=r"modules\[0\]"):
        create_model("inception", modules=[[1, 2, 3]])
    with pytest.raises(ConfigError, match="image_size"):
        create_model("cnn", image_size=2, channels=[4, 4])
    with pytest.raises(DataError, match="28x28"):
        create_model("cnn-small")(torch.randn(1, 1, 32, 32))
    with pytest.raises(DataError, match="28x28"):
        create_model("vit-tiny-fashion")(torch.randn(1, 1, 32, 32))


def test_zero_init_residual_makes_every_block_start_as_the_identity_branch():
    model = create_model("resnet", layers=[1, 1], width=8, stem="small", in_channels=1, num_classes=3)
    last_bns = [block.conv2[1] for stage in model.stages for block in stage]
    assert all(torch.count_nonzero(bn.weight) == 0 for bn in last_bns)
    model = create_model("resnet", layers=[1, 1], width=8, stem="small", in_channels=1, num_classes=3,
                         zero_init_residual=False)
    assert all(torch.count_nonzero(block.conv2[1].weight) > 0 for stage in model.stages for block in stage)


@pytest.mark.parametrize("kind", list(TINY))
def test_a_tiny_model_of_each_family_fits_16_random_images(kind):
    model = tiny(kind).train()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 1, 16, 16, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = F.cross_entropy(model(x), y).item()
    for _ in range(50):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model(x)
    assert start > math.log(10) * 0.7  # it started at chance
    assert F.cross_entropy(logits, y).item() < 0.2
    assert (logits.argmax(-1) == y).all()
