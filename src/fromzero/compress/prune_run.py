"""``fromzero compress prune`` end to end: a run directory in, a pruned run directory out.

Every option and the output path are checked before any work; then the source run is loaded, pruned
(unstructured: :mod:`fromzero.compress.prune`; structured: :mod:`fromzero.compress.structured`), and
written with :func:`fromzero.compress.run_output.write_compressed_run`, or, with a recovery recipe, trained
further by :func:`fromzero.compress.recover.recover` into the output. Either way the output holds
``sparsity.json`` (:mod:`fromzero.compress.sparsity_report`) and ``compression.json`` with one step:

    {"op": "prune", "method": ..., "sparsity": s, "scope": ..., "calibration": n}          unstructured
    {"op": "structured", "target": "heads"|"neurons", "amount": a, "scope": ..., "heads"|"neurons": {...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from fromzero.atomic import write_text
from fromzero.compress.calibration import calibration_batches, forward
from fromzero.compress.prune import check_prune_options, input_norms, prunable_linears, prune_weights
from fromzero.compress.recover import check_recovery_recipe, recover
from fromzero.compress.run_output import check_output, write_compressed_run
from fromzero.compress.sparsity_report import count_parameters, sparsity_report
from fromzero.compress.structured import check_structured, prune_structured
from fromzero.errors import ConfigError
from fromzero.runs import Run, load_run
from fromzero.runs.compression import quantized_step

SPARSITY_FILE = "sparsity.json"


@dataclass
class PruneResult:
    out: Path
    step: dict[str, Any]
    report: dict[str, Any]  # sparsity_report of the written model
    parameters_before: int
    model: nn.Module  # the pruned model in memory (before any recovery training)
    recovery_steps: int | None = None  # training steps of the recovery run, if any


def _check(source: Run, sparsity: float, method: str, scope: str, structured: str | None, calibration: int,
           recover_recipe: str | Path | None, overrides: list[str] | None) -> None:
    check_prune_options(sparsity, method, scope)
    if calibration < 0:
        raise ConfigError(f"--calibration: must be >= 0, got {calibration}")
    if quantized_step(source.compression) is not None:
        raise ConfigError(f"{source.path}: is quantized; prune the float run before quantizing it")
    if structured is not None:
        check_structured(source.model, structured, sparsity)
    elif method == "wanda" and calibration == 0:
        raise ConfigError("--calibration: wanda scores weights by their inputs; give at least 1 batch")
    if recover_recipe is not None:
        check_recovery_recipe(source, recover_recipe, overrides)
    elif overrides:
        raise ConfigError(f"unrecognized arguments: {' '.join(overrides)} (recipe overrides go with --recover)")


def prune_run(run_dir: str | Path, out: str | Path, *, sparsity: float, method: str = "magnitude",
              scope: str = "layer", structured: str | None = None, calibration: int = 8,
              recover_recipe: str | Path | None = None, overrides: list[str] | None = None,
              progress: bool = True) -> PruneResult:
    """Prune the run at ``run_dir`` into a new run directory ``out`` (see the module docstring).

    ``calibration`` batches of the run's validation data feed Wanda and activation-based structured
    importance (0: structured importance from the weights alone). ``recover_recipe`` (+ ``overrides``)
    fine-tunes or pretrains the pruned model further with its pruned weights held at zero.
    """
    check_prune_options(sparsity, method, scope)  # cheap checks first, then the output, then the run
    out = check_output(out)
    source = load_run(run_dir)
    source.require_text("compress prune")
    _check(source, sparsity, method, scope, structured, calibration, recover_recipe, overrides)
    model = source.model
    before = count_parameters(model)
    wants_batches = calibration > 0 and (structured is not None or method == "wanda")
    batches = calibration_batches(source, calibration) if wants_batches else []
    if structured is not None:
        step = prune_structured(model, structured, sparsity, scope, batches, forward)
    else:
        norms = input_norms(model, list(prunable_linears(model)), batches, forward) if method == "wanda" else None
        prune_weights(model, sparsity, method, scope, norms)
        step = {"op": "prune", "method": method, "sparsity": sparsity, "scope": scope,
                "calibration": len(batches)}
    if recover_recipe is None:
        report = sparsity_report(model)
        write_compressed_run(source, out, model, step, {SPARSITY_FILE: json.dumps(report, indent=1)})
        return PruneResult(out, step, report, before, model)
    out, n = recover(source, model, [step], recover_recipe, overrides, out, progress)
    report = sparsity_report(load_run(out).model)
    write_text(out / SPARSITY_FILE, json.dumps(report, indent=1))
    return PruneResult(out, step, report, before, model, n)
