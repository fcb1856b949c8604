"""LoRA: exact init, exact merge on every family, adapter-only gradients and files, base names kept."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from fromzero.errors import CheckpointError, ConfigError
from fromzero.finetune.lora import (
    LoRAConfig,
    apply_lora,
    load_adapter,
    lora_modules,
    lora_state_dict,
    mark_only_lora_trainable,
    merge_lora,
    save_adapter,
)
from fromzero.models import create_model
from fromzero.models.heads import SequenceClassifier
from fromzero.nn import Linear
from fromzero.nn.lora import LoRALinear
from fromzero.train.optim import OptimConfig, build_optimizer

FAMILIES = {
    "gpt": ("gpt-char-tiny", {}),
    "bert": ("bert-tiny", {"vocab_size": 200, "dropout": 0.0}),
    "t5": ("t5-tiny", {"vocab_size": 200, "dropout": 0.0}),
}
TARGETS = ["*attn.qkv", "*attn.proj", "*mlp.*"]


def tiny(family: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    name, overrides = FAMILIES[family]
    return create_model(name, **overrides).eval()


def run(model: nn.Module, family: str, ids: torch.Tensor) -> torch.Tensor:
    if family == "t5":
        return model(ids, decoder_input_ids=ids[:, :5])
    return model(ids)


def randomize_adapters(model: nn.Module, seed: int = 1) -> None:
    """B starts at zero (a no-op); give it values so merging has something to fold in."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in lora_modules(model).values():
            module.lora_b.copy_(torch.randn(module.lora_b.shape, generator=gen) * 0.05)


def ids_for(seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 120, (2, 12), generator=torch.Generator().manual_seed(seed))


def test_lora_linear_matches_naive_formula() -> None:
    torch.manual_seed(0)
    base = Linear(6, 5)
    lora = LoRALinear.from_linear(base, rank=2, alpha=3.0)
    torch.nn.init.normal_(lora.lora_b)
    x = torch.randn(4, 6)
    W, b, A, B = base.weight, base.bias, lora.lora_a, lora.lora_b
    expected = x @ W.T + b + (3.0 / 2) * (x @ A.T @ B.T)
    torch.testing.assert_close(lora(x), expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # one row without autograd takes fromzero.nn.Linear's split decode path
        torch.testing.assert_close(lora(x[:1]), expected[:1], rtol=1e-5, atol=1e-6)
    assert lora.weight is base.weight and lora.bias is base.bias  # shares, never copies


@pytest.mark.parametrize("family", list(FAMILIES))
def test_init_output_equals_base_and_base_keys_unchanged(family: str) -> None:
    model = tiny(family)
    base = copy.deepcopy(model)
    ids = ids_for()
    before = dict(model.state_dict())
    replaced = apply_lora(model, TARGETS, rank=4, alpha=8)
    assert replaced and all(isinstance(model.get_submodule(n), LoRALinear) for n in replaced)
    after = model.state_dict()
    added = set(after) - set(before)
    assert set(before) <= set(after)
    assert added == {f"{n}.{p}" for n in replaced for p in ("lora_a", "lora_b")}
    for key, value in before.items():
        assert after[key].data_ptr() == value.data_ptr()  # the very same base tensors, under the same names
    with torch.no_grad():
        torch.testing.assert_close(run(model, family, ids), run(base, family, ids), rtol=0, atol=0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_merged_equals_unmerged(family: str) -> None:
    model = tiny(family)
    base_keys = set(model.state_dict())
    apply_lora(model, TARGETS, rank=4, alpha=8)
    randomize_adapters(model)
    ids = ids_for()
    with torch.no_grad():
        unmerged = run(model, family, ids)
        reference = tiny(family)  # same seed: the base weights before any adapter
        assert (unmerged - run(reference, family, ids)).abs().max() > 1e-3  # the adapters do change outputs
        merged_names = merge_lora(model)
        merged = run(model, family, ids)
    assert merged_names and not lora_modules(model)
    assert set(model.state_dict()) == base_keys
    assert all(type(model.get_submodule(n)) is Linear for n in merged_names)
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-5)


def test_merge_keeps_attributes_and_unties_a_tied_head() -> None:
    model = tiny("gpt")
    emb_before = model.tok_emb.weight.detach().clone()
    apply_lora(model, ["lm_head", "*.attn.proj"], rank=2)
    assert model.lm_head.weight is model.tok_emb.weight  # tied weights stay tied under the adapter
    assert model.blocks[0].attn.proj.is_residual_projection
    randomize_adapters(model)
    ids = ids_for()
    with torch.no_grad():
        unmerged = model(ids)
        merge_lora(model)
        torch.testing.assert_close(model(ids), unmerged, rtol=0, atol=1e-5)
    assert torch.equal(model.tok_emb.weight, emb_before)  # the embedding did not absorb lm_head's update
    assert model.blocks[0].attn.proj.is_residual_projection


def test_only_adapter_parameters_get_gradients_and_change() -> None:
    model = SequenceClassifier(tiny("bert"), num_labels=3)
    apply_lora(model, ["*attn.qkv", "*attn.proj"], rank=4)
    trainable = mark_only_lora_trainable(model)
    assert trainable and all(n.endswith((".lora_a", ".lora_b")) for n in trainable)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = build_optimizer(model, OptimConfig(lr=1e-2, weight_decay=0.1, warmup_steps=0))
    ids, labels = ids_for(), torch.tensor([0, 2])
    model.train()
    for step in range(3):
        F.cross_entropy(model(ids), labels).backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        assert all(grads[n] is None for n in frozen)
        assert all(grads[n] is not None for n in trainable)
        if step == 0:  # B = 0 at init, so only B has a nonzero gradient on the first step
            assert all(grads[n].abs().sum() > 0 for n in trainable if n.endswith("lora_b"))
        opt.step()
        opt.zero_grad(set_to_none=True)
    for name, value in frozen.items():
        assert torch.equal(dict(model.named_parameters())[name], value), name


def test_extra_trainable_keeps_the_head() -> None:
    model = SequenceClassifier(tiny("gpt"), num_labels=2)
    apply_lora(model, ["*attn.qkv"], rank=2)
    trainable = mark_only_lora_trainable(model, extra=["head.*"])
    assert {n for n in trainable if not n.endswith(("lora_a", "lora_b"))} == {"head.classifier.weight",
                                                                             "head.classifier.bias"}
    with pytest.raises(ConfigError, match="matches no parameter"):
        mark_only_lora_trainable(model, extra=["nothing.*"])


def test_adapter_file_holds_only_adapter_tensors_and_restores_outputs(tmp_path) -> None:
    cfg = LoRAConfig(rank=4, alpha=8.0, targets=["*attn.qkv", "*mlp.fc"])
    trained = tiny("t5")
    replaced = apply_lora(trained, cfg.targets, rank=cfg.rank, alpha=cfg.alpha)
    randomize_adapters(trained, seed=3)
    path = save_adapter(trained, tmp_path / "adapter.safetensors", cfg)
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        metadata = f.metadata()
    assert keys == {f"{n}.{p}" for n in replaced for p in ("lora_a", "lora_b")}
    assert metadata["format"] == "fromzero-lora"

    fresh = tiny("t5")  # the same base weights, no adapter yet
    loaded_cfg = load_adapter(fresh, path)
    assert loaded_cfg == cfg
    ids = ids_for()
    with torch.no_grad():
        torch.testing.assert_close(run(fresh, "t5", ids), run(trained, "t5", ids), rtol=0, atol=0)


def test_adapter_include_saves_the_head_too(tmp_path) -> None:
    model = SequenceClassifier(tiny("gpt"), num_labels=2)
    apply_lora(model, ["*attn.qkv"], rank=2)
    state = lora_state_dict(model, include=["head.*"])
    assert {k for k in state if "lora" not in k} == {"head.classifier.weight", "head.classifier.bias"}
    path = save_adapter(model, tmp_path / "a.safetensors", LoRAConfig(rank=2, targets=["*attn.qkv"]),
                        include=["head.*"])
    saved_head = state["head.classifier.weight"].clone()  # state_dict tensors share storage with the model
    other = SequenceClassifier(tiny("gpt", seed=5), num_labels=2)
    assert not torch.equal(other.head.classifier.weight, saved_head)
    load_adapter(other, path)
    assert torch.equal(other.head.classifier.weight, saved_head)


def test_user_errors_are_clear(tmp_path) -> None:
    model = tiny("gpt")
    with pytest.raises(ConfigError, match=r"'\*nope\*' matches no linear layer"):
        apply_lora(model, ["*nope*"])
    apply_lora(model, ["*attn.qkv"], rank=2)
    with pytest.raises(ConfigError, match="already has a LoRA adapter"):
        apply_lora(model, ["*attn.qkv"])
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not a fromzero LoRA adapter"):
        load_adapter(model, plain)
    path = save_adapter(model, tmp_path / "r2.safetensors", LoRAConfig(rank=2))
    other = tiny("gpt")
    apply_lora(other, ["*attn.qkv"], rank=4)
    with pytest.raises(CheckpointError, match="rank 4 in the model, 2 in the file"):
        load_adapter(other, path)
    with pytest.raises(CheckpointError, match="no such layer"):
        load_adapter(tiny("t5"), path)
    bert = tiny("bert")
    with pytest.raises(CheckpointError, match=r"has shape \(2, 64\) in the file, \(2, 128\) in the model"):
        load_adapter(bert, path)  # same layer names, another width
    assert not lora_modules(bert)  # a failed load leaves the model untouched
    with pytest.raises(ConfigError, match="lora.rank"):
        from fromzero.config import from_dict

        from_dict(LoRAConfig, {"rank": 0}, prefix="lora")
