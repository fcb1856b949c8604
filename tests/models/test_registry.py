"""Every registered preset, whatever its family, builds, round-trips its config and counts its FLOPs."""

from __future__ import annotations

import pytest
import torch

from fromzero.config import to_dict
from fromzero.errors import ConfigError
from fromzero.models import build_model, family_of, list_families, list_models, model_config
from fromzero.train.cost_estimate import cost_estimate, count_parameters


@pytest.mark.parametrize("name", list_models())
def test_every_preset_builds_and_round_trips(name: str) -> None:
    cfg = model_config(name)
    with torch.device("meta"):  # no memory: bert-base and gpt2-medium are as cheap as toys here
        model = build_model(cfg)
    assert count_parameters(model)["total"] > 0
    family = family_of(cfg).name
    assert family in list_families()
    assert model_config(family, to_dict(cfg)) == cfg  # saved run configs rebuild the same model
    flops = cost_estimate(cfg, batch_size=1)["flops_per_token"]
    assert flops["training"] == 3 * flops["forward"] > 0


def test_unknown_model_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'bert-tiny'"):
        model_config("bert-tiyn")
