"""Optimizer factory: weight-decay groups, schedules against hand-computed values, config errors."""

from __future__ import annotations

import math
import typing

import pytest
import torch

from fromzero.config import from_dict
from fromzero.errors import ConfigError
from fromzero.models import create_model
from fromzero.train.optim import OptimConfig, build_optimizer, lr_multiplier, param_groups, set_lr

DECAYED_SUFFIXES = ("qkv.weight", "attn.proj.weight", "fc.weight", "mlp.proj.weight", "gate.weight",
                    "up.weight", "lm_head.weight")


@pytest.mark.parametrize("name", ["gpt-char-tiny", "llama-tiny"])
def test_weight_decay_groups(name):
    model = create_model(name, n_layer=2, vocab_size=50, block_size=16)
    groups = param_groups(model, 0.1)
    decay, no_decay = groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))  # no parameter twice, even the tied head
    named = dict(model.named_parameters())  # deduplicated: a tied head appears as tok_emb.weight
    assert set(ids) == {id(p) for p in named.values()}
    expected = {n for n in named if n.endswith(DECAYED_SUFFIXES)}
    got = {n for n, p in named.items() if any(p is q for q in decay["params"])}
    assert got == expected
    assert ("lm_head.weight" in expected) == (not model.config.tie_weights)
    for n in named:  # embeddings, norms and biases are never decayed
        if "emb" in n or "norm" in n or n.endswith("bias"):
            assert n not in got


def test_frozen_parameters_are_left_out():
    model = create_model("gpt-char-tiny")
    model.tok_emb.weight.requires_grad_(False)
    params = [p for g in param_groups(model, 0.1) for p in g["params"]]
    assert all(p is not model.tok_emb.weight for p in params)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(model, OptimConfig())


@pytest.mark.parametrize("schedule,step,expected", [
    ("cosine", 0, 0.1),  # warmup: (s + 1) / 10
    ("cosine", 4, 0.5),
    ("cosine", 9, 1.0),
    ("cosine", 10, 1.0),  # decay starts at the peak
    ("cosine", 35, 0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi / 4))),  # a quarter of the way
    ("cosine", 60, 0.6),  # midpoint: 0.2 + 0.8 * 0.5
    ("cosine", 110, 0.2),  # end: min_lr_ratio
    ("cosine", 500, 0.2),  # and it stays there
    ("linear", 60, 0.6),
    ("linear", 85, 0.2 + 0.8 * 0.25),
    ("linear", 110, 0.2),
    ("constant", 3, 0.4),
    ("constant", 10, 1.0),
    ("constant", 1000, 1.0),
])
def test_schedule_values(schedule, step, expected):
    cfg = OptimConfig(schedule=schedule, warmup_steps=10, min_lr_ratio=0.2)
    assert lr_multiplier(step, cfg, max_steps=110) == pytest.approx(expected, abs=1e-12)


def test_no_warmup_and_set_lr():
    cfg = OptimConfig(lr=3e-4, warmup_steps=0, schedule="cosine", min_lr_ratio=0.0)
    assert lr_multiplier(0, cfg, 100) == 1.0
    assert lr_multiplier(50, cfg, 100) == pytest.approx(0.5)
    opt = build_optimizer(create_model("gpt-char-tiny"), cfg)
    assert set_lr(opt, 50, cfg, 100) == pytest.approx(1.5e-4)
    assert all(g["lr"] == pytest.approx(1.5e-4) for g in opt.param_groups)


OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD,
              "rmsprop": torch.optim.RMSprop, "adafactor": torch.optim.Adafactor}


@pytest.mark.parametrize("name", typing.get_args(typing.get_type_hints(OptimConfig)["name"]))
def test_each_optimizer_builds_and_steps(name):
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", n_layer=1)
    opt = build_optimizer(model, OptimConfig(name=name, lr=1e-2))
    assert type(opt) is OPTIMIZERS[name]
    before = model.blocks[0].attn.qkv.weight.detach().clone()
    model(torch.randint(0, 128, (2, 8))).square().mean().backward()
    opt.step()
    assert not torch.equal(before, model.blocks[0].attn.qkv.weight)


def test_adafactor_steps_scale_with_the_parameter_rms():
    # Adafactor's first step on a vector: rho_1 = min(lr, 1) = lr, update = lr * max(1e-3, RMS(p)) * sign(grad)
    # (the second-moment estimate of a single step is grad^2 itself, and the RMS clip is 1)
    big, small = torch.nn.Parameter(torch.full((4,), 10.0)), torch.nn.Parameter(torch.full((4,), 0.1))
    model = torch.nn.Module()
    model.big, model.small = big, small
    opt = build_optimizer(model, OptimConfig(name="adafactor", lr=1e-2, weight_decay=0.0))
    (big.sum() * 3 - small.sum() * 0.5).backward()
    opt.step()
    assert torch.allclose(big.detach(), torch.full((4,), 10.0 - 1e-2 * 10.0), atol=1e-5)
    assert torch.allclose(small.detach(), torch.full((4,), 0.1 + 1e-2 * 0.1), atol=1e-6)


def test_adamw_hyperparameters_reach_torch():
    opt = build_optimizer(create_model("gpt-char-tiny"), OptimConfig(lr=2e-3, betas=[0.8, 0.99], eps=1e-6))
    assert opt.defaults["betas"] == (0.8, 0.99) and opt.defaults["eps"] == 1e-6
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


@pytest.mark.parametrize("data,key", [
    ({"betas": [0.9, 1.5]}, "optim.betas"),
    ({"betas": [0.9]}, "optim.betas"),
    ({"lr": -1.0}, "optim.lr"),
    ({"warmup_steps": -5}, "optim.warmup_steps"),
    ({"min_lr_ratio": 2}, "optim.min_lr_ratio"),
    ({"name": "adamW"}, "optim.name"),
])
def test_config_errors_name_the_key(data, key):
    with pytest.raises(ConfigError, match=rf"^r\.yaml: {key}"):
        from_dict(OptimConfig, data, file="r.yaml", prefix="optim")


def test_config_from_dict_converts_types():
    cfg = from_dict(OptimConfig, {"lr": 1, "betas": [0, 0.5], "schedule": "linear"}, prefix="optim")
    assert isinstance(cfg.lr, float) and cfg.betas == [0.0, 0.5] and all(type(b) is float for b in cfg.betas)
    with pytest.raises(ConfigError, match="did you mean 'adamw'"):
        from_dict(OptimConfig, {"name": "adamww"}, prefix="optim")
