"""``fromzero pretrain --nproc 2`` end to end: a rank killed mid-run stops the run with one line naming it and
the last complete checkpoint, which stays loadable, and ``--resume`` on 2 ranks then ends bit for bit where
an uninterrupted 2-rank run ends (dropout on, so each rank's RNG state must be restored as well). Bad
multi-process input fails in one line, exit 2, before any work."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fromzero.cli import main
from fromzero.data.tokenizers import Tokenizer
from fromzero.models import create_model
from fromzero.train.checkpoint import latest_checkpoint, load_checkpoint
from fromzero.train.loggers import read_metrics

TIMING = ("elapsed_s", "tokens_per_s")


def _command(out: Path, corpus: Path, overrides: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "fromzero", "pretrain", "--out", str(out), "--no-progress", "--nproc", "2",
            *overrides, f"--data.inputs=[{corpus}]", "--train.max_steps=100", "--train.ckpt_every=10",
            "--train.eval_every=50", "--model.dropout=0.1", "--sample.prompts=[]", *extra]  # dropout: RNG per rank


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The pid of ``rank`` among the launcher's children (torchrun sets RANK in each worker's environment)."""
    children = " ".join(Path(t, "children").read_text() for t in Path(f"/proc/{launcher.pid}/task").iterdir())
    for pid in children.split():
        try:
            if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return int(pid)
        except OSError:
            continue
    return None


def _trajectory(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run_dir / "metrics.jsonl")]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the rank's process through /proc")
def test_killed_rank_stops_the_run_and_resume_continues_exactly(tmp_path: Path, small_corpus: Path,
                                                                tiny_overrides: list[str]) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(_command(reference, small_corpus, tiny_overrides), check=True, capture_output=True)

    launcher = subprocess.Popen(_command(killed, small_corpus, tiny_overrides), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not (killed / "checkpoints" / "step_000030").exists():
        assert launcher.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.005)
    pid = _rank_pid(launcher, 1)
    assert pid is not None
    subprocess.run(["kill", "-9", str(pid)], check=True)
    stderr = launcher.communicate(timeout=120)[1]
    ckpt = latest_checkpoint(killed / "checkpoints")
    assert launcher.returncode == 2 and ckpt is not None and 30 <= ckpt.step < 100
    assert stderr.strip().splitlines() == [
        f"error: rank 1 of 2 was killed by SIGKILL; the other ranks were stopped; the last complete checkpoint "
        f"is {ckpt.path} (step {ckpt.step}): add --resume to continue it"]
    vocab = Tokenizer.load(killed / "tokenizer.json").vocab_size
    model = create_model("gpt-char-tiny", block_size=32, vocab_size=vocab)
    assert load_checkpoint(ckpt, model, restore_rng=False)["step"] == ckpt.step  # complete and loadable
    assert max(r["step"] for r in read_metrics(killed / "metrics.jsonl")) < 100

    subprocess.run(_command(killed, small_corpus, tiny_overrides, "--resume"), check=True, capture_output=True)
    want, got = load_file(str(reference / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert _trajectory(killed) == _trajectory(reference)  # every logged loss, lr and grad norm, bit for bit


@pytest.mark.parametrize(("args", "message"), [
    (["--nproc", "0"], "argument --nproc: must be >= 1, got 0"),
    (["--nproc", "3"], "train.batch_size: 8 rows do not split evenly over 3 processes; use a multiple of 3"),
    (["--nproc", "2", "--train.device=cuda"], "train.device: 'cuda' requested but CUDA is not available"),
    (["--nproc", "2", "--train.parallel=none"], "train.parallel: 'none' with 2 processes"),
])
def test_bad_multi_process_input_is_one_line(tmp_path: Path, small_corpus: Path, tiny_overrides: list[str],
                                             capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    if "cuda" in " ".join(args) and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "run"
    code = main(["pretrain", "--out", str(out), *tiny_overrides, f"--data.inputs=[{small_corpus}]", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not out.exists()  # nothing was written


def test_an_error_every_rank_raises_is_printed_once(tmp_path: Path, small_corpus: Path,
                                                    tiny_overrides: list[str]) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # not a run directory: every rank refuses it
    done = subprocess.run(_command(out, small_corpus, tiny_overrides), capture_output=True, text=True)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(f"error: {out}")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
