"""Jobs that survive their environment: a stop signal checkpoints and resumes bit-identically, a full disk is
one line with the last checkpoint intact, and logs off a terminal hold no carriage-return redraws."""

from __future__ import annotations

import errno
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fromzero.atomic import write_bytes
from fromzero.cli import main
from fromzero.data.loader import RandomWindows
from fromzero.errors import DiskFullError, TrainingStopped
from fromzero.models import create_model
from fromzero.objectives import CausalLM
from fromzero.train.checkpoint import latest_checkpoint, list_checkpoints
from fromzero.train.loggers import read_metrics
from fromzero.train.optim import OptimConfig
from fromzero.train.trainer import TrainConfig, Trainer

COMPARED = ("step", "loss", "lr", "grad_norm", "tokens", "val_loss")
SRC = Path(__file__).resolve().parents[2] / "src"


class Tripwire:
    """A batch source that calls ``action`` once, when batch ``at`` is drawn (i.e. during step ``at``)."""

    def __init__(self, inner: RandomWindows, at: int, action) -> None:
        self.inner, self.at, self.action, self.fired = inner, at, action, False

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        if step == self.at and not self.fired:
            self.fired = True
            self.action()
        return self.inner.batch(step, micro)


def _trainer(run_dir: Path, tokens: torch.Tensor, at: int | None = None, action=None, max_steps: int = 30,
             ckpt_every: int = 10) -> Trainer:
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", vocab_size=64, block_size=16, dropout=0.1)
    data = tokens.numpy()
    train = RandomWindows(data, 16, 4, seed=1)
    source = Tripwire(train, at, action) if at is not None else train
    cfg = TrainConfig(max_steps=max_steps, batch_size=4, seq_len=16, log_every=2, eval_every=10, eval_batches=2,
                      ckpt_every=ckpt_every, keep_last=0, threads=1, precision="fp32")
    return Trainer(model, CausalLM(), source, RandomWindows(data, 16, 4, seed=2), cfg,
                   OptimConfig(lr=3e-3, warmup_steps=2), run_dir, progress=False)


def _trajectory(run_dir: Path) -> list[dict]:
    return [{k: r[k] for k in COMPARED if k in r} for r in read_metrics(run_dir / "metrics.jsonl")]


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, 64, (4000,), generator=torch.Generator().manual_seed(0))


def _final_weights(trainer: Trainer, path: Path) -> Path:
    from safetensors.torch import save_model

    save_model(trainer.model, str(path))
    return path


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGUSR1, 138)])
def test_stop_signal_checkpoints_at_the_step_and_resume_is_bit_identical(tmp_path: Path, tokens, sig, code) -> None:
    reference = _trainer(tmp_path / "reference", tokens)
    reference.fit()
    stopped = _trainer(tmp_path / "stopped", tokens, at=13, action=lambda: os.kill(os.getpid(), sig))
    with pytest.raises(TrainingStopped, match=f"stopped by {signal.Signals(sig).name} at step 14; checkpoint "
                                              "written to .*; resume with --resume") as info:
        stopped.fit()
    assert info.value.exit_code == code
    assert [c.step for c in list_checkpoints(tmp_path / "stopped" / "checkpoints")] == [10, 14]  # 14: the signal's
    assert signal.getsignal(sig) is signal.SIG_DFL or signal.getsignal(sig) == signal.default_int_handler
    resumed = _trainer(tmp_path / "stopped", tokens)
    resumed.fit(resume=True)
    assert _trajectory(tmp_path / "stopped") == _trajectory(tmp_path / "reference")
    assert _same_weights(_final_weights(resumed, tmp_path / "a.safetensors"),
                         _final_weights(reference, tmp_path / "b.safetensors"))


def test_sigterm_on_the_command_line_exits_143_with_one_line(tmp_path: Path, small_corpus: Path,
                                                            tiny_overrides) -> None:
    argv = [sys.executable, "-m", "fromzero", "pretrain", "--out", str(tmp_path / "run"), *tiny_overrides,
            f"--data.inputs=[{small_corpus}]", "--train.max_steps=100000", "--train.ckpt_every=100000"]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    metrics, deadline = tmp_path / "run" / "metrics.jsonl", time.time() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):  # training has started
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith(("encoding:", "train:"))]  # progress
    assert len(lines) == 1 and lines[0].startswith("stopped by SIGTERM at step ") and "--resume" in lines[0]
    step = int(lines[0].split("at step ")[1].split(";")[0])
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").step == step


# -- a full disk ---------------------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MB tmpfs (root only; elsewhere the test monkeypatches ENOSPC instead)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        gc.collect()  # safetensors memory-maps the files it loads; drop them before unmounting
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # detach now, free when unused


def _fill(disk: Path, leave: int = 64 * 1024) -> Path:
    """Occupy all but ``leave`` bytes of ``disk``."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler = disk / "filler.bin"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def test_full_disk_during_a_checkpoint_is_one_line_and_the_last_one_resumes(tmp_path: Path, tokens, small_disk,
                                                                             monkeypatch) -> None:
    reference = _trainer(tmp_path / "reference", tokens)
    reference.fit()
    run = (small_disk or tmp_path) / "run"
    fillers: list[Path] = []
    if small_disk is not None:
        action = lambda: fillers.append(_fill(small_disk))  # noqa: E731
    else:  # no tmpfs: every safetensors write fails the way a full disk makes it fail
        import fromzero.train.checkpoint as ckpt

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        action = lambda: monkeypatch.setattr(ckpt, "save_file", full) or monkeypatch.setattr(ckpt, "save_model", full)  # noqa: E731
    trainer = _trainer(run, tokens, at=12, action=action)
    with pytest.raises(DiskFullError) as info:
        trainer.fit()
    message = str(info.value)
    assert "\n" not in message and str(run / "checkpoints") in message and "the disk is full" in message
    assert "checkpoint step 20 was not written" in message and "(step 10) is intact" in message
    assert [c.step for c in list_checkpoints(run / "checkpoints")] == [10]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")], "temp folders remain"
    for filler in fillers:
        filler.unlink()
    monkeypatch.undo()
    resumed = _trainer(run, tokens)
    resumed.fit(resume=True)
    assert _trajectory(run) == _trajectory(tmp_path / "reference")


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path: Path, small_disk, monkeypatch) -> None:
    disk = small_disk or tmp_path
    target = disk / "model.bin"
    write_bytes(target, b"old weights")
    if small_disk is not None:
        _fill(small_disk, leave=0)
        data = b"x" * (1 << 20)
    else:
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
        data = b"new"
    with pytest.raises(DiskFullError, match=f"{disk}: the disk is full; model.bin was not written"):
        write_bytes(target, data)
    assert target.read_bytes() == b"old weights"
    assert sorted(p.name for p in disk.iterdir() if p.name.startswith(".")) == []


# -- logs off a terminal ---------------------------------------------------------------------------------------------

def test_a_training_log_has_no_redraws_and_sparse_progress_lines(tmp_path: Path, small_corpus: Path,
                                                                 tiny_overrides) -> None:
    log = tmp_path / "log.txt"
    argv = [sys.executable, "-m", "fromzero", "pretrain", "--out", str(tmp_path / "run"), *tiny_overrides,
            f"--data.inputs=[{small_corpus}]", "--train.max_steps=60"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "FROMZERO_PROGRESS_INTERVAL": "2"}
    start = time.time()
    with open(log, "w") as fh:
        subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, check=True)
    elapsed = time.time() - start
    text = log.read_text()
    assert "\r" not in text and "\x1b[" not in text
    progress = [x for x in text.splitlines() if x.startswith("train: ")]
    assert progress and "60/60 step (100%) done" in progress[-1]
    assert len(progress) <= elapsed / 2 + 2  # at most one per interval, plus the final line
    assert main(["eval", str(tmp_path / "run"), "--no-progress"]) == 0
