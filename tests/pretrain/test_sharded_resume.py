"""A pretraining run on a sharded prepared folder, SIGKILLed after a checkpoint and resumed, ends bit-identical
to an uninterrupted run (weights and every logged loss), with windows crossing shard boundaries after the
resume point; and it trains on exactly the batches the concatenated stream gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import fromzero
from fromzero.data.loader import RandomWindows
from fromzero.data.shards import load_shards
from fromzero.data.token_shards import ShardedTokens
from fromzero.data.tokenizers import TokenizerConfig, train_tokenizer
from fromzero.train.loggers import read_metrics
from run_kill import kill_after_checkpoint
from sharded_data import write_sharded

SHARD_TOKENS = 500  # ~100 shards: a 33-token window crosses a boundary about once in 15 draws
MAX_STEPS, KILL_AT, SEQ, BATCH, SEED = 40, 10, 32, 8, 1337
COMPARED = ("step", "loss", "lr", "grad_norm", "tokens", "val_loss")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Path:
    """The small corpus encoded with a char tokenizer: 90% train, 10% val, in 500-token shards."""
    text = small_corpus.read_text(encoding="utf-8")
    tok = train_tokenizer([text], TokenizerConfig(kind="char"))
    ids = np.asarray(tok.encode(text))
    cut = len(ids) * 9 // 10
    return write_sharded(tmp_path_factory.mktemp("data") / "prepared", ids[:cut], SHARD_TOKENS, tok, val=ids[cut:])


def _cmd(out: Path, prepared: Path, overrides: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "fromzero", "pretrain", "--out", str(out), "--no-progress", *overrides,
            f"--data.prepared={prepared}", f"--train.max_steps={MAX_STEPS}", "--train.log_every=1",
            f"--model.block_size={SEQ}", f"--train.batch_size={BATCH}", f"--seed={SEED}", "--model.dropout=0.1",
            "--sample.prompts=[]", *extra]


def _env() -> dict[str, str]:
    src = Path(fromzero.__file__).resolve().parents[1]  # the package these tests import, in the subprocesses too
    return {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}


def _trajectory(run: Path) -> list[dict]:
    return [{k: r[k] for k in COMPARED if k in r} for r in read_metrics(run / "metrics.jsonl")]


def _crossings(tokens: ShardedTokens, steps: range) -> int:
    """Training windows of these steps that span a shard boundary (as the runner's RandomWindows draws them)."""
    windows = RandomWindows(tokens, SEQ, BATCH, seed=SEED)
    starts = np.concatenate([windows.offsets(s).numpy() for s in steps])
    inner = tokens.offsets[1:-1]  # boundaries between shards
    first = np.searchsorted(inner, starts, side="right")
    return int((first != np.searchsorted(inner, starts + SEQ, side="right")).sum())


@pytest.mark.slow
def test_sigkill_then_resume_on_shards_is_bit_identical(tmp_path: Path, prepared: Path, tiny_overrides) -> None:
    train, _, meta = load_shards(prepared)
    assert isinstance(train, ShardedTokens) and len(train.parts) >= 90 and meta["format_version"] == 2
    assert _crossings(train, range(KILL_AT, MAX_STEPS)) >= 10  # the resumed steps read across boundaries

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    pipes = {"env": _env(), "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    reference = subprocess.Popen(_cmd(whole, prepared, tiny_overrides), **pipes)  # both at once: less wall time
    kill_after_checkpoint(subprocess.Popen(_cmd(killed, prepared, tiny_overrides), **pipes), killed, KILL_AT,
                          "model.safetensors")
    done = subprocess.run(_cmd(killed, prepared, tiny_overrides, "--resume"), env=_env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert reference.wait() == 0, reference.stderr.read()[-2000:]

    want, got = _trajectory(whole), _trajectory(killed)
    assert sum("loss" in r for r in want) == MAX_STEPS and got == want  # exact floats, every step
    a, b = (load_file(str(run / "model.safetensors")) for run in (whole, killed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_runner_batches_are_the_concatenated_streams(prepared: Path) -> None:
    train, _, _ = load_shards(prepared)
    flat = np.concatenate([np.fromfile(p, dtype=np.uint16) for p in sorted(prepared.glob("train-*.bin"))])
    sharded, whole = RandomWindows(train, SEQ, BATCH, SEED), RandomWindows(flat, SEQ, BATCH, SEED)
    for step in range(MAX_STEPS):
        assert torch.equal(sharded.batch(step)["input_ids"], whole.batch(step)["input_ids"])
