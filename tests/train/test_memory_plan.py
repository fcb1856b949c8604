"""The memory planner: each term against hand-computed bytes for gpt-char-tiny, LoRA, FSDP/DDP, checkpointing,
the largest batch against a brute-force search, sizes, and one prediction against a live measurement."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fromzero.finetune.lora import apply_lora, mark_only_lora_trainable
from fromzero.models import create_model
from fromzero.train.cost_estimate import describe_model
from fromzero.train.memory_plan import (
    PlanSettings,
    Workload,
    largest_batch,
    parse_size,
    plan_memory,
    sequence_activation_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
# gpt-char-tiny by hand: V=128, C=64, 2 blocks, context 64, 4 heads, FFN 256, biases, LM head tied to tok_emb
V, C, L, P_CTX, H, F = 128, 64, 2, 64, 4, 256
BLOCK = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * F + F) + (F * C + C)  # norms, qkv, proj, fc, proj
PARAMS = V * C + P_CTX * C + L * BLOCK + 2 * C  # tok_emb, pos_emb, blocks, norm_f (lm_head is tok_emb)
TENSORS = 2 + 12 * L + 2


def tiny(**overrides: object) -> torch.nn.Module:
    with torch.device("meta"):  # no memory: the planner reads shapes and requires_grad only
        return create_model("gpt-char-tiny", **overrides)


def test_params_grads_and_adamw_state_are_exact() -> None:
    spec = describe_model(tiny())
    assert (spec.params, spec.trainable, spec.trainable_tensors) == (PARAMS, PARAMS, TENSORS)
    plan = plan_memory(spec, Workload(16), PlanSettings(batch_size=2))
    assert plan.params == 4 * PARAMS and plan.grads == 4 * PARAMS
    assert plan.optimizer == 8 * PARAMS + 4 * TENSORS  # exp_avg, exp_avg_sq in fp32 and a float step per tensor
    sgd = plan_memory(spec, Workload(16), PlanSettings(batch_size=2, optimizer="sgd"))
    assert sgd.optimizer == 4 * PARAMS  # one momentum buffer


def test_activations_follow_the_documented_formula() -> None:
    """Per block and token (fp32, flash attention, no dropout): x and mean/rstd (LN1), LN1 output (qkv input),
    q|k|v, attention output, log-sum-exp per head, x + attn and its stats (LN2), LN2 output, FFN 2F."""
    T = 16
    block = 4 * T * ((C + 2) + C + 3 * C + C + H + (C + 2) + C + 2 * F)
    output = 4 * T * ((C + 2) + C) + T * (4 * V + 8)  # norm_f, lm_head input, log-softmax + int64 targets
    act = sequence_activation_bytes(describe_model(tiny()), Workload(T))
    assert act["blocks"] == L * block and act["output"] == output and act["loss"] == T * (4 * V + 8)
    assert act["embedding"] == 8 * T  # int64 token ids
    plan = plan_memory(describe_model(tiny()), Workload(T), PlanSettings(batch_size=3))
    assert plan.activations == 3 * (L * block + output + 8 * T)
    bf16 = sequence_activation_bytes(describe_model(tiny()), Workload(T), "bf16")
    half = 2 * T * (C + 3 * C + C + C + 2 * F)  # linear inputs, q|k|v, output, FFN in bf16; norms stay fp32
    assert bf16["blocks"] == L * (half + 4 * T * (2 * (C + 2) + H))


def test_dropout_and_math_attention_add_masks_and_probabilities() -> None:
    T = 16
    plain = sequence_activation_bytes(describe_model(tiny()), Workload(T))["blocks"]
    dropped = sequence_activation_bytes(describe_model(tiny(dropout=0.1)), Workload(T))["blocks"]
    # per block: residual and FFN dropout masks (2C), the math path's probabilities, mask and dropped copy
    # (3 H T) instead of flash's log-sum-exp (H), q/k/v copies (3C) instead of the qkv output (3C)
    assert dropped - plain == L * 4 * T * (2 * C + 3 * H * T - H)


def test_lora_counts_only_adapter_grads_and_state() -> None:
    model, r = tiny(), 4
    apply_lora(model, ["*attn.qkv"], rank=r)
    mark_only_lora_trainable(model)
    adapters = L * (r * C + 3 * C * r)  # A: r x in, B: out x r
    spec = describe_model(model)
    plan = plan_memory(spec, Workload(16), PlanSettings(batch_size=2))
    assert plan.params == 4 * (PARAMS + adapters)
    assert plan.grads == 4 * adapters and plan.optimizer == 8 * adapters + 4 * 2 * L
    block = spec.stacks[0][1][0]
    assert block.saving == {"attn.qkv"} and block.lora_rank == r and block.grad


def test_frozen_prefix_keeps_no_activations() -> None:
    model = tiny()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("norm_f"))
    act = sequence_activation_bytes(describe_model(model), Workload(16))
    assert act["blocks"] == 0 and act["embedding"] == 0


def test_fsdp_divides_states_by_n_and_ddp_adds_buckets() -> None:
    spec, w = describe_model(tiny()), Workload(16)
    one = plan_memory(spec, w, PlanSettings(batch_size=8))
    fsdp = plan_memory(spec, w, PlanSettings(batch_size=8, parallel="fsdp", nproc=4))
    assert fsdp.params == math.ceil(one.params / 4) and fsdp.grads == math.ceil(one.grads / 4)
    assert fsdp.optimizer == math.ceil(one.optimizer / 4)
    assert fsdp.activations == plan_memory(spec, w, PlanSettings(batch_size=2)).activations  # 8 / 4 per rank
    # whole on each rank: the root's params (outside the blocks) and two blocks' (the running one, the prefetched)
    gathered = 4 * (PARAMS - L * BLOCK) + 2 * 4 * BLOCK
    assert fsdp.moments["loss"] - plan_memory(spec, w, PlanSettings(batch_size=2)).moments["loss"] == gathered
    ddp = plan_memory(spec, w, PlanSettings(batch_size=8, parallel="ddp", nproc=4))
    assert ddp.params == one.params and ddp.optimizer == one.optimizer
    assert ddp.peak - plan_memory(spec, w, PlanSettings(batch_size=2)).peak == 4 * PARAMS  # gradient buckets


def test_checkpointing_keeps_only_block_inputs() -> None:
    spec, T = describe_model(tiny()), 16
    act = sequence_activation_bytes(spec, Workload(T))
    plan = plan_memory(spec, Workload(T), PlanSettings(batch_size=4, activation_checkpointing=True))
    assert act["block_inputs"] == L * 4 * C * T
    assert plan.activations == 4 * (L * 4 * C * T + act["embedding"] + act["output"])
    full = plan_memory(spec, Workload(T), PlanSettings(batch_size=4))
    assert plan.activations < full.activations and plan.peak <= full.peak


def test_largest_batch_is_the_brute_force_maximum() -> None:
    spec, w = describe_model(tiny()), Workload(64)
    for settings in (PlanSettings(), PlanSettings(activation_checkpointing=True),
                     PlanSettings(parallel="fsdp", nproc=2), PlanSettings(precision="bf16")):
        for budget in (2_000_000, 5_000_000, 40_000_000):
            brute, b = 0, settings.nproc
            while plan_memory(spec, w, replace(settings, batch_size=b)).peak <= budget:
                brute, b = b, b + settings.nproc
            assert largest_batch(spec, w, settings, budget) == brute, (settings, budget)


@pytest.mark.parametrize(("text", "size"), [("512MiB", 512 * 2**20), ("8GiB", 8 * 2**30), ("8GB", 8 * 10**9),
                                            ("1.5G", 1_500_000_000), ("4096", 4096), (" 2 kib ", 2048)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["8 bananas", "-1GiB", "0", "", "GiB", "1e9"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def _tracker():
    spec = importlib.util.spec_from_file_location("memory_table", ROOT / "benchmarks" / "memory_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("checkpointing", [False, True])
def test_prediction_within_15_percent_of_a_live_measurement(checkpointing: bool) -> None:
    """Three AdamW steps of gpt-char-tiny (batch 8, 64 tokens), peak live tensor bytes from the allocator."""
    from fromzero.objectives import CausalLM
    from fromzero.train.optim import OptimConfig, build_optimizer

    table, batch, T = _tracker(), 8, 64
    torch.manual_seed(0)

    def train() -> None:
        model = create_model("gpt-char-tiny")
        if checkpointing:
            table.checkpoint_blocks(model)
        optimizer, objective = build_optimizer(model, OptimConfig()), CausalLM()
        for _ in range(3):
            ids = torch.randint(0, V, (batch, T + 1))
            objective(model, {"input_ids": ids[:, :-1], "labels": ids[:, 1:]}).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    measured, _ = table.peak_tensor_bytes(train)
    kernel = "fused" if optimizer_is_fused() else "per_tensor"
    plan = plan_memory(describe_model(tiny()), Workload(T), PlanSettings(
        batch_size=batch, activation_checkpointing=checkpointing, optimizer_kernel=kernel))
    assert abs(plan.peak / measured - 1) < 0.15, (plan.peak, measured)


def optimizer_is_fused() -> bool:
    from fromzero.train.optim import OptimConfig, build_optimizer

    return bool(build_optimizer(create_model("gpt-char-tiny"), OptimConfig()).defaults.get("fused"))
