"""Kill-and-resume bit identity, O(1) data restore, atomic checkpoints, NaN handling, early stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fromzero.errors import CheckpointError, TrainingDivergedError
from fromzero.models import create_model
from fromzero.objectives import CausalLM, ObjectiveOutput
from fromzero.train import checkpoint as ckpt_mod
from fromzero.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from fromzero.train.loggers import read_metrics
from fromzero.train.optim import OptimConfig
from fromzero.train.trainer import TrainConfig, Trainer

COMPARED = ("step", "loss", "lr", "grad_norm", "tokens", "val_loss", "val_accuracy")


def _cli(out: Path, corpus: Path, overrides: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "fromzero", "pretrain", "--out", str(out), "--no-progress",
            *overrides, f"--data.inputs=[{corpus}]", "--train.max_steps=150", "--train.ckpt_every=20",
            "--model.dropout=0.1", *extra]


def _trajectory(run_dir: Path) -> list[dict]:
    return [{k: r[k] for k in COMPARED if k in r} for r in read_metrics(run_dir / "metrics.jsonl")]


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path: Path, small_corpus: Path, tiny_overrides) -> None:
    reference = tmp_path / "reference"
    subprocess.run(_cli(reference, small_corpus, tiny_overrides), check=True, capture_output=True)

    killed = tmp_path / "killed"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen(_cli(killed, small_corpus, tiny_overrides), **quiet)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step_000060").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = latest_checkpoint(killed / "checkpoints")
    assert ckpt is not None and 60 <= ckpt.step < 150, "kill must land mid-run"
    written = max(r["step"] for r in read_metrics(killed / "metrics.jsonl"))
    assert written < 150

    subprocess.run(_cli(killed, small_corpus, tiny_overrides, "--resume"), check=True, capture_output=True)
    got, want = _trajectory(killed), _trajectory(reference)
    assert len(want) > 30
    assert got == want  # exact float equality: bit-identical losses, lrs and grad norms


class CountingSource:
    """Wraps a batch source and records which steps were requested."""

    def __init__(self, inner) -> None:
        self.inner, self.steps = inner, []

    def batch(self, step: int, micro: int = 0):
        self.steps.append(step)
        return self.inner.batch(step, micro)


class RandomTokens:
    def __init__(self, vocab: int, seq: int, seed: int) -> None:
        self.vocab, self.seq, self.seed = vocab, seq, seed

    def batch(self, step: int, micro: int = 0):
        g = torch.Generator().manual_seed(self.seed * 100_000 + step * 10 + micro)
        x = torch.randint(0, self.vocab, (4, self.seq + 1), generator=g)
        return {"input_ids": x[:, :-1], "labels": x[:, 1:]}


def _trainer(run_dir: Path, objective=None, **train) -> Trainer:
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", block_size=16)
    cfg = TrainConfig(**{"max_steps": 30, "batch_size": 4, "log_every": 1, "eval_every": 10, "eval_batches": 2,
                         "ckpt_every": 10, "keep_last": 0, "threads": 1, "precision": "fp32", **train})
    src = CountingSource(RandomTokens(128, 16, seed=1))
    return Trainer(model, objective or CausalLM(), src, RandomTokens(128, 16, seed=2), cfg,
                   OptimConfig(lr=1e-3, warmup_steps=2), run_dir, progress=False)


def test_resume_does_not_replay_the_data(tmp_path: Path) -> None:
    _trainer(tmp_path, max_steps=20).fit()
    resumed = _trainer(tmp_path, max_steps=30)
    resumed.fit(resume=True)
    assert resumed.train_data.steps == list(range(20, 30))  # starts at the checkpoint's step: O(1)


def test_crash_during_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = _trainer(tmp_path, max_steps=10)
    trainer.fit()
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints" / "step_000010").iterdir()}

    real_save_file = ckpt_mod.save_file

    def crash_midway(tensors, path, *args, **kwargs):
        real_save_file(dict(list(tensors.items())[:1]), path)  # a partial file on disk...
        raise OSError("disk died")  # ...then the "crash"

    monkeypatch.setattr(ckpt_mod, "save_file", crash_midway)
    with pytest.raises(OSError, match="disk died"):
        _trainer(tmp_path, max_steps=20).fit(resume=True)
    assert [c.step for c in list_checkpoints(tmp_path / "checkpoints")] == [10]
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    after = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints" / "step_000010").iterdir()}
    assert after == before
    fresh = create_model("gpt-char-tiny", block_size=16)
    state = load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"), fresh, restore_rng=False)
    assert state["step"] == 10


def test_half_written_checkpoint_folder_is_ignored(tmp_path: Path) -> None:
    _trainer(tmp_path, max_steps=10).fit()
    stale = tmp_path / "checkpoints" / ".tmp-step_000020"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\x00" * 10)  # as if killed while writing
    torn = tmp_path / "checkpoints" / "step_000030"
    torn.mkdir()  # a folder without state.json is not a checkpoint
    assert latest_checkpoint(tmp_path / "checkpoints").step == 10
    _trainer(tmp_path, max_steps=20).fit(resume=True)
    assert latest_checkpoint(tmp_path / "checkpoints").step == 20
    assert not stale.exists()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    calls = {"n": 0}

    def poisoned(model, batch) -> ObjectiveOutput:
        out = CausalLM()(model, batch)
        calls["n"] += model.training  # count training steps only (evaluation runs in eval mode)
        if calls["n"] > 14 and model.training:
            out.loss = out.loss * float("nan")
        return out

    with pytest.raises(TrainingDivergedError, match="step 15.*intact"):
        _trainer(tmp_path, objective=poisoned).fit()
    ckpts = list_checkpoints(tmp_path / "checkpoints")
    assert [c.step for c in ckpts] == [10]
    model = create_model("gpt-char-tiny", block_size=16)
    load_checkpoint(ckpts[0], model, restore_rng=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_early_stopping_on_validation_loss(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, max_steps=200, eval_every=2, early_stop_patience=2,
                       early_stop_min_delta=10.0)  # no eval can improve by 10 nats
    result = trainer.fit()
    assert result.stopped_early and result.step == 6  # best at step 2, then two bad evals
    assert latest_checkpoint(tmp_path / "checkpoints").step == 6


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        _trainer(tmp_path).fit(resume=True)


def test_keep_last_prunes_old_checkpoints(tmp_path: Path) -> None:
    _trainer(tmp_path, max_steps=30, keep_last=2).fit()
    assert [c.step for c in list_checkpoints(tmp_path / "checkpoints")] == [20, 30]
    state = json.loads((tmp_path / "checkpoints" / "step_000030" / "state.json").read_text())
    assert state["data"] == {"next_step": 30}
    assert os.path.getsize(tmp_path / "checkpoints" / "step_000030" / "optimizer.safetensors") > 0
