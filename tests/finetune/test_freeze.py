"""Partial fine-tuning: the right parameters freeze on every family, and frozen ones never move."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fromzero.config import from_dict
from fromzero.errors import ConfigError
from fromzero.finetune import FreezeConfig, apply_freeze, frozen_names, trainable_summary
from fromzero.finetune.lora import apply_lora, mark_only_lora_trainable
from fromzero.models import create_model
from fromzero.models.heads import SequenceClassifier
from fromzero.train.optim import OptimConfig, build_optimizer

FAMILIES = {
    "gpt": ("gpt-char-tiny", {}),
    "bert": ("bert-tiny", {"vocab_size": 200}),
    "t5": ("t5-tiny", {"vocab_size": 200}),
}


def tiny(family: str) -> nn.Module:
    torch.manual_seed(0)
    name, overrides = FAMILIES[family]
    return create_model(name, **overrides)


@pytest.mark.parametrize(("family", "expected"), [
    ("gpt", {"tok_emb.weight", "pos_emb.weight"}),  # lm_head.weight is tok_emb.weight (tied)
    ("bert", {"tok_emb.weight", "pos_emb.weight", "type_emb.weight", "emb_norm.weight", "emb_norm.bias"}),
    ("t5", {"tok_emb.weight"}),
])
def test_embeddings_by_family(family: str, expected: set[str]) -> None:
    assert set(frozen_names(tiny(family), FreezeConfig(embeddings=True))) == expected
    wrapped = SequenceClassifier(tiny(family), num_labels=2)
    assert set(frozen_names(wrapped, FreezeConfig(embeddings=True))) == {f"backbone.{n}" for n in expected}


def test_first_blocks_of_every_t5_stack() -> None:
    model = tiny("t5")
    names = frozen_names(model, FreezeConfig(first_n_blocks=1))
    every = [n for n, _ in model.named_parameters()]
    expected = [n for n in every if n.startswith(("encoder.blocks.0.", "decoder.blocks.0."))]
    assert names == expected and expected
    assert not any(".blocks.1." in n for n in names)


def test_head_only_summary_counts_by_hand() -> None:
    model = SequenceClassifier(tiny("bert"), num_labels=3)
    total = sum(p.numel() for p in model.parameters())  # parameters() also skips the tied decoder weight
    summary = apply_freeze(model, FreezeConfig(head_only=True))
    assert summary.trainable == 128 * 3 + 3
    assert summary.total == total
    assert summary.percent == pytest.approx(100 * 387 / total)
    assert "387" in str(summary)
    assert all(n.startswith("backbone.") for n in summary.frozen_names)


def test_trainable_and_frozen_patterns() -> None:
    model = tiny("gpt")
    names = frozen_names(model, FreezeConfig(trainable=["blocks.1.*", "norm_f.*"], frozen=["blocks.1.mlp.*"]))
    kept = {n for n, _ in model.named_parameters()} - set(names)
    assert kept == {n for n, _ in model.named_parameters()
                    if (n.startswith("blocks.1.") and ".mlp." not in n) or n.startswith("norm_f.")}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_frozen_parameters_are_bit_identical_after_training(family: str) -> None:
    model = SequenceClassifier(tiny(family), num_labels=2, dropout=0.0)
    apply_freeze(model, FreezeConfig(embeddings=True, first_n_blocks=1))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    # weight decay on: a frozen matrix given to AdamW would shrink even without a gradient
    opt = build_optimizer(model, OptimConfig(lr=1e-2, weight_decay=0.1, warmup_steps=0))
    ids = torch.randint(3, 120, (4, 10), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 1, 0])
    for _ in range(3):
        F.cross_entropy(model(ids), labels).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    params = dict(model.named_parameters())
    for name, before in frozen.items():
        assert torch.equal(params[name], before), name
    assert any(not torch.equal(params[n], before) for n, before in trainable.items())
    assert not torch.equal(params["head.classifier.weight"], trainable["head.classifier.weight"])


def test_composes_with_lora_and_never_unfreezes() -> None:
    model = SequenceClassifier(tiny("gpt"), num_labels=2)
    apply_lora(model, ["*attn.qkv"], rank=2)
    trainable = set(mark_only_lora_trainable(model, extra=["head.*"]))
    apply_freeze(model, FreezeConfig(first_n_blocks=1))
    now = {n for n, p in model.named_parameters() if p.requires_grad}
    assert now == {n for n in trainable if not n.startswith("backbone.blocks.0.")}
    assert trainable_summary(model).trainable == sum(p.numel() for n, p in model.named_parameters() if n in now)


@pytest.mark.parametrize(("cfg", "model", "message"), [
    (FreezeConfig(first_n_blocks=3), "gpt", r"3 exceeds the 2 blocks of 'blocks'; choose at most 2"),
    (FreezeConfig(first_n_blocks=1), "plain", r"no 'blocks.<i>.' parameters"),
    (FreezeConfig(embeddings=True), "plain", r"no parameter under tok_emb"),
    (FreezeConfig(head_only=True), "gpt", r"no 'head.' parameters; wrap the backbone"),
    (FreezeConfig(trainable=["head.*", "nope.*"]), "head", r"freeze.trainable: 'nope.\*' matches no parameter"),
    (FreezeConfig(frozen=["x*"]), "gpt", r"freeze.frozen: 'x\*' matches no parameter"),
])
def test_rules_matching_nothing_are_config_errors(cfg: FreezeConfig, model: str, message: str) -> None:
    built = {"gpt": lambda: tiny("gpt"), "plain": lambda: nn.Sequential(nn.Linear(2, 2)),
             "head": lambda: SequenceClassifier(tiny("gpt"), 2)}[model]()
    with pytest.raises(ConfigError, match=message):
        apply_freeze(built, cfg)
    assert all(p.requires_grad for p in built.parameters())  # nothing froze before the error


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="freeze.first_n_blocks: must be >= 0"):
        from_dict(FreezeConfig, {"first_n_blocks": -1}, prefix="freeze")
    assert not FreezeConfig().active and FreezeConfig(frozen=["a"]).active
