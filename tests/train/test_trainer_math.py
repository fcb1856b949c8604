"""Trainer arithmetic against references: gradient accumulation, clipping, bf16 autocast, optimizers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fromzero.models import create_model
from fromzero.objectives import CausalLM
from fromzero.train.optim import OptimConfig
from fromzero.train.trainer import TrainConfig, Trainer


class Halves:
    """Batch for step s is a fixed 8-row batch; with accumulation, micro m gets rows [4m, 4m+4)."""

    def __init__(self, accum: int) -> None:
        self.accum = accum

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(1000 + step)
        x = torch.randint(0, 128, (8, 17), generator=g)
        rows = slice(micro * 8 // self.accum, (micro + 1) * 8 // self.accum)
        return {"input_ids": x[rows, :-1], "labels": x[rows, 1:]}


def _fit(tmp: Path, accum: int, **train) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", block_size=16)
    # fp32 pinned: `auto` probes each run, and on a CPU with native bf16 the two runs could differ
    cfg = TrainConfig(max_steps=3, batch_size=8 // accum, grad_accum=accum, eval_every=0, ckpt_every=0,
                      log_every=1, threads=1, **{"precision": "fp32", **train})
    # SGD, not Adam: Adam divides by sqrt(v), which turns float noise in near-zero gradients (e.g. the
    # key bias, to which softmax is invariant) into full-size updates, hiding the comparison.
    optim = OptimConfig(name="sgd", lr=0.1, momentum=0.9, warmup_steps=0)
    Trainer(model, CausalLM(), Halves(accum), None, cfg, optim, tmp, progress=False).fit()
    return model


def test_gradient_accumulation_equals_the_full_batch(tmp_path: Path) -> None:
    full = _fit(tmp_path / "full", accum=1)
    accumulated = _fit(tmp_path / "accum", accum=2)
    for (name, a), (_, b) in zip(full.named_parameters(), accumulated.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_gradient_clipping_bounds_the_logged_norm_and_the_update(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", block_size=16)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(max_steps=1, batch_size=8, eval_every=0, ckpt_every=0, log_every=1, threads=1,
                      grad_clip=1e-3)
    Trainer(model, CausalLM(), Halves(1), None, cfg, OptimConfig(name="sgd", lr=1.0, momentum=0.0,
                                                                 weight_decay=0.0, warmup_steps=0),
            tmp_path, progress=False).fit()
    # plain SGD with lr 1: the update is the clipped gradient, whose global norm is at most grad_clip
    update = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before,
                                                                          strict=True)))
    assert float(update) == pytest.approx(1e-3, rel=1e-3)


def test_bf16_autocast_trains_on_cpu(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", block_size=16)
    cfg = TrainConfig(max_steps=20, batch_size=8, eval_every=0, ckpt_every=0, log_every=1, threads=1,
                      precision="bf16")
    x = Halves(1).batch(0)
    fixed = Halves(1)
    fixed.batch = lambda step, micro=0: x  # overfit one batch
    trainer = Trainer(model, CausalLM(), fixed, None, cfg, OptimConfig(lr=1e-2, warmup_steps=0), tmp_path,
                      progress=False)
    result = trainer.fit()
    assert trainer.precision == "bf16"
    assert model.tok_emb.weight.dtype == torch.float32  # weights stay fp32 under autocast
    with torch.no_grad():
        fresh = create_model("gpt-char-tiny", block_size=16)
        start = F.cross_entropy(fresh(x["input_ids"]).flatten(0, 1), x["labels"].flatten())
    assert result.train_loss < float(start) - 0.5


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "rmsprop"])
def test_every_optimizer_reduces_the_loss(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", block_size=16)
    lr = {"adamw": 1e-2, "adam": 1e-2, "sgd": 0.5, "rmsprop": 1e-3}[name]
    cfg = TrainConfig(max_steps=15, batch_size=8, eval_every=0, ckpt_every=0, log_every=1, threads=1)
    fixed = Halves(1)
    fixed.batch = lambda step, micro=0, _b=Halves(1).batch(0): _b  # overfit one batch
    result = Trainer(model, CausalLM(), fixed, None, cfg, OptimConfig(name=name, lr=lr, warmup_steps=0),
                     tmp_path, progress=False).fit()
    assert result.train_loss < 4.0  # from ln(128) = 4.85
