"""Two CPU processes (gloo) train exactly what one process trains: DDP and FSDP2, with and without gradient
accumulation and activation checkpointing; checkpoints resume on 2 ranks bit for bit and across 1 <-> 2 ranks.

The reference is the one-process Trainer on the same global batches. Two ranks sum gradients in another
order (all-reduce / reduce-scatter), so losses and weights agree to stated tolerances (LOSS_ATOL,
WEIGHT_ATOL below), not bitwise;
a 2-rank run resumed on 2 ranks is compared bitwise with the uninterrupted 2-rank run.

This file is also the worker: ``python test_distributed.py OUT SCENARIO...`` runs scenarios as one rank
(RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment, as torchrun sets them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_model
from torch import nn

from fromzero.data.loader import RandomWindows
from fromzero.errors import ConfigError
from fromzero.models import create_model
from fromzero.objectives import CausalLM
from fromzero.train.loggers import read_metrics
from fromzero.train.optim import OptimConfig
from fromzero.train.parallel import patch_blocks
from fromzero.train.trainer import TrainConfig, Trainer

STEPS, HALF = 6, 3
# Measured, 2 ranks vs 1 process after 6 AdamW steps (lr 3e-3): losses differ by <= 4.8e-7 (a few float32
# ulps), weights by <= 1.3e-5. The largest weight differences are in the attention key bias, whose exact
# gradient is 0 (softmax ignores a shift of every score): Adam divides its float-noise gradient by its own
# scale, so noise summed in another order becomes a different step there. Elsewhere <= 9e-6.
LOSS_ATOL, WEIGHT_ATOL = 2e-6, 5e-5
SCENARIOS = {  # name: (train options, steps, resumes the folder the parent prepared)
    "ddp": ({"parallel": "ddp"}, STEPS, False),
    "fsdp": ({"parallel": "fsdp"}, STEPS, False),
    "ddp_accum": ({"parallel": "ddp", "grad_accum": 2}, STEPS, False),
    "fsdp_accum_recompute": ({"parallel": "fsdp", "grad_accum": 2, "activation_checkpointing": True}, STEPS, False),
    "fsdp_half": ({"parallel": "fsdp"}, HALF, False),  # then resumed on 2 ranks: "fsdp_half+"
    "ddp_half": ({"parallel": "ddp"}, HALF, False),  # resumed by one process in the test
    "sharded_half": ({"parallel": "fsdp", "checkpoint_format": "sharded"}, HALF, False),
    "from_one": ({"parallel": "ddp"}, STEPS, True),  # the parent wrote HALF steps with one process
}


def make_trainer(run_dir: Path, max_steps: int = STEPS, **train) -> Trainer:
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", block_size=16, dropout=0.0)
    tokens = np.random.default_rng(0).integers(0, 128, 4000)
    cfg = TrainConfig(**{"max_steps": max_steps, "batch_size": 8, "log_every": 1, "eval_every": HALF,
                         "eval_batches": 1, "ckpt_every": HALF, "keep_last": 0, "threads": 1, "precision": "fp32",
                         **train})
    optim = OptimConfig(lr=3e-3, warmup_steps=0, schedule="constant")  # lr independent of max_steps: resumable
    return Trainer(model, CausalLM(), RandomWindows(tokens, 16, 8, seed=1), RandomWindows(tokens, 16, 8, seed=2),
                   cfg, optim, run_dir, progress=False)


def train(run_dir: Path, max_steps: int = STEPS, resume: bool = False, **options) -> None:
    """Train (all ranks); rank 0 writes the final weights to final.safetensors."""
    trainer = make_trainer(run_dir, max_steps, **options)
    trainer.fit(resume=resume)
    model = trainer.export_model()
    if trainer.world.is_main:
        save_model(model, str(run_dir / "final.safetensors"))


class NoBlocks(nn.Module):
    """A language model without Transformer blocks: nothing for FSDP to shard block by block."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.head = nn.Embedding(128, 16), nn.Linear(16, 128)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.emb(input_ids))


def _refuse_unshardable(out: Path, rank: int) -> None:
    tokens = np.random.default_rng(0).integers(0, 128, 4000)
    cfg = TrainConfig(max_steps=2, batch_size=8, parallel="fsdp", precision="fp32")
    try:
        Trainer(NoBlocks(), CausalLM(), RandomWindows(tokens, 16, 8, seed=1), None, cfg, OptimConfig(),
                out / "no_blocks", progress=False)
    except ConfigError as err:
        (out / f"no_blocks.rank{rank}.txt").write_text(str(err))


def _worker(out: Path, names: list[str]) -> None:
    for name in names:
        options, steps, resume = SCENARIOS[name]
        train(out / name, steps, resume, **options)
    train(out / "fsdp_half", STEPS, resume=True, parallel="fsdp")  # 2 ranks resume 2 ranks
    _refuse_unshardable(out, int(os.environ["RANK"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(out: Path) -> None:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, str(out), *SCENARIOS],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    try:
        errors = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(e[-3000:] for e in errors)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("distributed")
    train(out / "one", STEPS)
    train(out / "one_accum", STEPS, grad_accum=2)
    train(out / "from_one", HALF)  # one process writes HALF steps; two ranks finish them
    _two_ranks(out)
    return out


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "final.safetensors"))


def _losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def _assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=WEIGHT_ATOL, rtol=0, msg=name)


@pytest.mark.parametrize(("name", "reference"), [("ddp", "one"), ("fsdp", "one"), ("ddp_accum", "one_accum"),
                                                 ("fsdp_accum_recompute", "one_accum"), ("from_one", "one")])
def test_two_ranks_train_what_one_process_trains(runs: Path, name: str, reference: str) -> None:
    got, want = _losses(runs / name), _losses(runs / reference)
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(1, STEPS + 1))  # one record per step
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], atol=LOSS_ATOL, rtol=0)
    _assert_close(_weights(runs / name), _weights(runs / reference))


def test_two_ranks_resume_two_ranks_bit_for_bit(runs: Path) -> None:
    resumed, whole = _weights(runs / "fsdp_half"), _weights(runs / "fsdp")
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert _losses(runs / "fsdp_half") == _losses(runs / "fsdp")


@pytest.mark.parametrize("name", ["ddp_half", "sharded_half"])
def test_one_process_resumes_a_two_rank_checkpoint(runs: Path, tmp_path: Path, name: str) -> None:
    run_dir = tmp_path / name
    shutil.copytree(runs / name, run_dir)
    train(run_dir, STEPS, resume=True)
    _assert_close(_weights(run_dir), _weights(runs / "one"))
    np.testing.assert_allclose([v for _, v in _losses(run_dir)], [v for _, v in _losses(runs / "one")], atol=LOSS_ATOL)


def test_only_rank_zero_writes_the_run_directory(runs: Path) -> None:
    for name in ("ddp", "fsdp"):
        files = sorted(p.relative_to(runs / name).as_posix() for p in (runs / name).rglob("*")
                       if p.is_file() and "tensorboard" not in p.parts)
        one = sorted(p.relative_to(runs / "one").as_posix() for p in (runs / "one").rglob("*")
                     if p.is_file() and "tensorboard" not in p.parts)
        assert files == one  # same files as one process: one metrics.jsonl, one set of checkpoints
        assert len(list((runs / name / "tensorboard").iterdir())) == 1
        steps = [r["step"] for r in read_metrics(runs / name / "metrics.jsonl")]
        assert len(steps) == STEPS + 2  # a train record per step, a validation record at steps 3 and 6


def test_fsdp_refuses_a_model_without_blocks_on_every_rank(runs: Path) -> None:
    for rank in range(2):
        assert (runs / f"no_blocks.rank{rank}.txt").read_text() == (
            "train.parallel: fsdp shards a model one Transformer block at a time, and this NoBlocks has none "
            "(no fromzero.nn.Block); use train.parallel: ddp")
    assert not (runs / "no_blocks").exists()  # refused before anything was written


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    tokens = torch.randint(0, 128, (4, 17), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": tokens[:, :-1], "labels": tokens[:, 1:]}
    grads = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = create_model("gpt-char-tiny", block_size=16, dropout=0.1)  # dropout: the RNG replays too
        patched = patch_blocks(model, recompute=recompute, compile=False)
        assert len(patched) == (2 if recompute else 0)
        torch.manual_seed(1)
        CausalLM()(model, batch).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=0, rtol=0, msg=name)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), sys.argv[2:])
