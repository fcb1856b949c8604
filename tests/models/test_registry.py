"""Every registered preset, whatever its family, builds, round-trips its config and counts its FLOPs."""

from __future__ import annotations

import pytest
import torch

from fromzero.config import to_dict
from fromzero.errors import ConfigError
from fromzero.models import build_model, family_of, list_families, list_models, model_config
from fromzero.train.cost_estimate import cost_estimate, count_parameters
from fromzero.train.image_cost import image_cost


@pytest.mark.parametrize("name", list_models())
def test_every_preset_builds_and_round_trips(name: str) -> None:
    cfg = model_config(name)
    with torch.device("meta"):  # no memory: bert-base and gpt2-medium are as cheap as toys here
        model = build_model(cfg)
    if hasattr(cfg, "n_items") or hasattr(model, "fit_counts"):  # count-based families (recommenders,
        # n-gram) hold buffers only (their state)
        assert sum(t.numel() for t in model.state_dict().values()) > 0
    else:
        assert count_parameters(model)["total"] > 0
    family = family_of(cfg).name
    assert family in list_families()
    assert model_config(family, to_dict(cfg)) == cfg  # saved run configs rebuild the same model
    if not any(isinstance(m, torch.nn.Linear) for m in model.modules()):
        return  # an embedding-only recommender (MF, count-based): no matmul per token to count
    if hasattr(cfg, "in_channels"):  # an image family: FLOPs per image, counted on a real forward
        flops = image_cost(cfg, 32 if name in IMAGENET_SIZED else None)["flops_per_image"]
    else:
        flops = cost_estimate(cfg, batch_size=1)["flops_per_token"]
    assert flops["training"] == 3 * flops["forward"] > 0


IMAGENET_SIZED = ("resnet18", "resnet50", "googlenet")  # a 32x32 forward keeps them fast (a ViT needs its own size)


def test_image_cost_counts_a_conv_and_a_linear_by_hand() -> None:
    """cnn with one stage of one 3x3 conv (1 -> 4 channels, 8x8, pooled to 4x4), hidden 5, 3 classes."""
    cfg = model_config("cnn", {"in_channels": 1, "num_classes": 3, "image_size": 8, "channels": [4],
                               "convs_per_stage": 1, "hidden": 5})
    flops = image_cost(cfg)["flops_per_image"]["forward"]
    conv = 2 * 8 * 8 * 4 * (1 * 3 * 3)
    fcs = 2 * 5 * (4 * 4 * 4) + 2 * 3 * 5
    assert flops == conv + fcs


def test_unknown_model_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'bert-tiny'"):
        model_config("bert-tiyn")
