"""MAE (vit-mae): masking keeps the lowest-noise patches, the encoder sees only them, patchify against a naive
reference, and the encoder's weights load into a `vit` model that computes the same features."""

from __future__ import annotations

import pytest
import torch

from fromzero.config import to_dict
from fromzero.errors import ConfigError
from fromzero.models import create_model, model_config
from fromzero.models.mae import sincos_positions_2d
from fromzero.objectives.masked_image import MaskedImageModeling

TINY = {"image_size": 8, "patch_size": 2, "in_channels": 2, "num_classes": 3, "n_layer": 2, "n_head": 2,
        "n_embd": 16, "decoder_dim": 12, "decoder_layers": 1, "decoder_heads": 2}  # 16 patches of 2*2*2 pixels


def tiny(**kw):
    torch.manual_seed(0)
    return create_model("vit-mae", **{**TINY, **kw}).eval()


def test_forward_shapes_and_the_preset_encoder_is_vit_tiny_fashion():
    model = tiny()
    pred, mask = model(torch.randn(3, 2, 8, 8), torch.rand(3, 16))
    assert pred.shape == (3, 16, 8) and mask.shape == (3, 16) and mask.dtype == torch.float32
    assert model_config("vit-mae-tiny-fashion").encoder_config() == model_config("vit-tiny-fashion")


@pytest.mark.parametrize(("ratio", "keep"), [(0.75, 4), (0.6, 6), (0.5, 8), (0.0, 16)])
def test_masking_keeps_round_l_times_one_minus_ratio_patches_with_the_lowest_noise(ratio, keep):
    model = tiny(mask_ratio=ratio)
    assert model.config.num_keep == keep == round(16 * (1 - ratio))
    noise = torch.rand(4, 16, generator=torch.Generator().manual_seed(3))
    _, mask = model(torch.randn(4, 2, 8, 8), noise)
    for b in range(4):
        lowest = sorted(range(16), key=lambda i: noise[b, i].item())[:keep]  # the reference: sort by hand
        assert sorted(torch.nonzero(mask[b] == 0).flatten().tolist()) == sorted(lowest)
        assert set(mask[b].tolist()) <= {0.0, 1.0}


def test_the_encoder_sees_only_the_kept_patches():
    model = tiny()
    x = torch.randn(2, 2, 8, 8)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred, mask = model(x, noise)
        masked = mask[0].nonzero().flatten()[0].item()  # a hidden patch of image 0: (row, col) on the 4x4 grid
        kept = (mask[0] == 0).nonzero().flatten()[0].item()
        for patch, visible in ((masked, False), (kept, True)):
            y = x.clone()
            r, c = divmod(patch, 4)
            y[0, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2] += 5.0  # change only that patch's pixels
            new = model(y, noise)[0]
            assert torch.allclose(new[1], pred[1], atol=1e-6)  # image 1 untouched either way
            assert torch.allclose(new[0], pred[0], atol=1e-6) == (not visible)


def test_patchify_matches_a_naive_loop_and_unpatchify_inverts_it():
    model = tiny()
    x = torch.randn(2, 2, 8, 8)
    ref = torch.stack([torch.stack([
        torch.tensor([x[b, ch, 2 * r + i, 2 * c + j].item() for i in range(2) for j in range(2) for ch in range(2)])
        for r in range(4) for c in range(4)]) for b in range(2)])  # (B, L, p*p*C): row, column, channel
    assert torch.equal(model.patchify(x), ref)
    assert torch.equal(model.unpatchify(model.patchify(x)), x)


def test_encoder_weights_load_into_a_vit_model_that_computes_the_same_features():
    model = tiny(mask_ratio=0.0)  # keep every patch: the encoder then sees the whole image (in noise order)
    vit = create_model("vit", **to_dict(model.encoder_config())).eval()
    missing, unexpected = vit.load_state_dict(model.encoder.state_dict(), strict=False)
    assert sorted(missing) == ["head.bias", "head.weight"] and unexpected == []
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(vit.state_dict()[name], tensor)
    x, noise = torch.randn(2, 2, 8, 8), torch.rand(2, 16)
    with torch.no_grad():
        ids_keep, _, _ = model.random_masking(noise)
        latent = model.encode_visible(x, ids_keep)  # tokens permuted; attention is order-free, positions travel along
        assert torch.allclose(latent[:, 0], vit.features(x), atol=1e-5)


def test_sincos_positions_match_the_formula():
    table = sincos_positions_2d(8, 3)  # (9, 8): [sin, cos](col * w), [sin, cos](row * w), w = 10000^(-k/2)
    row, col = divmod(5, 3)
    w = torch.tensor([1.0, 10000 ** -0.5], dtype=torch.float64)
    ref = torch.cat([torch.sin(col * w), torch.cos(col * w), torch.sin(row * w), torch.cos(row * w)]).float()
    assert torch.allclose(table[5], ref)


def test_a_few_steps_lower_the_reconstruction_loss_on_a_fixed_batch():
    model = tiny().train()
    batch = {"pixels": torch.randn(4, 2, 8, 8), "mask_noise": torch.rand(4, 16)}
    objective, opt = MaskedImageModeling(), torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        out = objective(model, batch)
        opt.zero_grad()
        out.loss.backward()
        assert model.encoder.patch_embed.projection.weight.grad.abs().sum() > 0  # gradients reach the encoder
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_bad_masking_configs_and_noise_are_refused():
    with pytest.raises(ConfigError, match="mask_ratio"):
        create_model("vit-mae", **{**TINY, "mask_ratio": 0.99})  # round(16 * 0.01) = 0 patches visible
    with pytest.raises(ConfigError, match="decoder_dim"):
        create_model("vit-mae", **{**TINY, "decoder_dim": 10})
    with pytest.raises(ConfigError, match="n_embd"):
        create_model("vit-mae", **{**TINY, "n_embd": 15})
    with pytest.raises(ValueError, match=r"needs \(B, 16\)"):
        tiny()(torch.randn(1, 2, 8, 8), torch.rand(1, 15))
