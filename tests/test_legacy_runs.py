"""Run directories written by an earlier layout of the package still evaluate, generate and resume.

``tests/fixtures/legacy_runs`` was written by commit 91170c4 (before the one-home-per-concept
restructuring) with ``make.sh`` in that folder: a GPT pretraining run with checkpoints at steps 10 and 20,
a sequence classification fine-tune and an SFT (LoRA) fine-tune of that GPT, a T5 span-corruption run and
a seq2seq fine-tune of it. ``expected_outputs.json`` holds what that commit's ``fromzero eval`` and
``fromzero generate`` printed on them. Every test works on a copy, so the fixture never changes.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fromzero.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_runs"
EXPECTED = json.loads((FIXTURE / "expected_outputs.json").read_text(encoding="utf-8"))
NUMBER = re.compile(r"-?\d[\d,]*\.?\d*(?:e[-+]?\d+)?")


@pytest.fixture
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixture folder as the working directory (its recipes use relative paths)."""
    root = tmp_path / "legacy"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    return root


ADDED_METRICS = {"exact_match"}  # seq2seq runs report it since the Chinese -> pinyin task (issue 18)


def _run(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    assert code == 0, f"fromzero {' '.join(argv)} exited {code}"
    return out.getvalue()


def _same_report(got: str, want: str, rel: float = 2e-3) -> None:
    """Equal text, with every number equal within ``rel`` (fp32 sums differ slightly across CPUs)."""
    assert NUMBER.sub("#", got) == NUMBER.sub("#", want), f"{got!r} != {want!r}"
    for a, b in zip(NUMBER.findall(got), NUMBER.findall(want), strict=True):
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
        assert math.isclose(x, y, rel_tol=rel, abs_tol=2e-4), f"{a} != {b} in {got!r}"


@pytest.mark.parametrize(("key", "argv"), [
    ("eval_gpt", ["eval", "gpt_run"]),
    ("eval_t5", ["eval", "t5_run", "--batches", "2", "--batch-size", "4"]),
    ("eval_cls", ["eval", "gpt_cls"]),
    ("eval_mt", ["eval", "t5_mt"]),
])
def test_old_runs_evaluate_as_before(legacy: Path, key: str, argv: list[str]) -> None:
    got = _run(*argv)
    # metrics added since the fixture was written are new lines; every old line must stay as it was
    got = "".join(line for line in got.splitlines(keepends=True) if line.split(":")[0].strip() not in ADDED_METRICS)
    _same_report(got, EXPECTED[key])


@pytest.mark.parametrize(("key", "argv"), [
    ("generate_gpt", ["generate", "gpt_run", "--prompt", "Eliz", "--seed", "3", "--temperature", "1.0",
                      "--max-tokens", "20", "--no-stream"]),
    ("generate_sft", ["generate", "gpt_sft", "--chat", "--prompt", "say ball", "--seed", "3", "--temperature", "1.0",
                      "--max-tokens", "6", "--no-stream"]),
    ("generate_t5_mt", ["generate", "t5_mt", "--prompt", "the ball", "--greedy", "--max-tokens", "8"]),
])
def test_old_runs_generate_as_before(legacy: Path, key: str, argv: list[str]) -> None:
    assert _run(*argv) == EXPECTED[key]


def test_old_run_resumes_to_the_uninterrupted_result(legacy: Path) -> None:
    """Resuming the old run from its step-10 checkpoint reproduces the weights and losses it reached at 20."""
    run = legacy / "gpt_run"
    want = load_file(run / "model.safetensors")
    reference = _losses(run / "metrics.jsonl")
    shutil.rmtree(run / "checkpoints" / "step_000020")
    (run / "model.safetensors").unlink()
    _run("pretrain", "gpt_run/config.yaml", "--out", "gpt_run", "--resume", "--no-progress")
    got = load_file(run / "model.safetensors")
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, msg=name)
    losses = _losses(run / "metrics.jsonl")
    assert [s for s, _ in losses] == [s for s, _ in reference] == [5, 10, 15, 20]
    for (_, a), (_, b) in zip(losses, reference, strict=True):
        assert math.isclose(a, b, rel_tol=1e-4)


def _losses(path: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, path.read_text().splitlines()) if "loss" in r]


@pytest.mark.parametrize("run", ["gpt_run", "gpt_cls", "gpt_sft", "t5_run", "t5_mt"])
def test_old_runs_describe_themselves(legacy: Path, run: str) -> None:
    assert run in _run("info", run) or "parameters" in _run("info", run)
