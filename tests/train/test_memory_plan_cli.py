"""``fromzero info RECIPE`` with the memory planner's options: what it prints agrees with the planner, and bad
options are one-line errors (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.cli.memory_report import training_target
from fromzero.train.cost_estimate import describe_model
from fromzero.train.memory_plan import PlanSettings, largest_batch, optimizer_kernel, parse_size, plan_memory

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"


def _planned(batch: int, **settings: object) -> tuple:
    import torch

    target = training_target(QUICKSTART, [])
    base = PlanSettings(batch_size=batch, optimizer_kernel=optimizer_kernel("adamw", torch.device("cpu")))
    return describe_model(target.model), target.workload, PlanSettings(**{**base.__dict__, **settings})


def test_info_prints_the_plan_and_the_largest_batch(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(QUICKSTART), "--memory", "512MiB", "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    spec, workload, settings = _planned(32)
    plan = plan_memory(spec, workload, settings)
    assert "training memory" in out and f"at the {plan.phase}" in out
    plain = largest_batch(spec, workload, settings, parse_size("512MiB"))
    ckpt = largest_batch(spec, workload, PlanSettings(**{**settings.__dict__, "activation_checkpointing": True}),
                         parse_size("512MiB"))
    assert re.search(rf"largest batch in 512MiB per process: batch {plain:,}; with activation checkpointing: "
                     rf"batch {ckpt:,}", out), out
    assert 0 < plain < ckpt
    # the precision probe's verdict for these shapes on this CPU, with the flags it decided on
    assert re.search(r"precision for these shapes on this machine: fastest: (fp32|bf16) \(.*avx512_bf16 (yes|no)", out)


def test_info_plans_fsdp_over_ranks(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(QUICKSTART), "--nproc", "4", "--parallel", "fsdp", "--batch-size", "64",
                 "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "4 processes (fsdp), 16 sequences each" in out


@pytest.mark.parametrize(("argv", "named"), [
    (["--memory", "8bananas"], "--memory"),
    (["--memory", "0GiB"], "--memory"),
    (["--nproc", "0"], "--nproc"),
    (["--nproc", "3"], "--nproc 3"),  # the recipe's batch of 32 does not split over 3 processes
    (["--parallel", "zero3"], "--parallel"),
])
def test_bad_memory_options_are_one_line_errors(argv: list[str], named: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(QUICKSTART), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and named in err, err
