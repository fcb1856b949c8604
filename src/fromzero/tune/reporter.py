"""Each evaluation of a trial reported to Optuna as it happens, so a pruner can stop a bad trial early.

The Trainer has no per-evaluation hook (``TrainerHooks.on_best`` fires only on improvements), so the
reporter wraps the trial's objective (the runners' ``wrap_objective``): the Trainer's evaluation calls the
objective with the model in eval mode, and the first training call after that means the evaluation is over
and its record is in ``metrics.jsonl`` (the logger flushes each line). The reporter then reports the chosen
metric at that step and raises ``optuna.TrialPruned`` when the pruner says so; the Trainer's ``finally``
closes the logs and the run directory stays as it was at that step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from fromzero.errors import ConfigError
from fromzero.objectives import Objective
from fromzero.train.loggers import read_metrics


def eval_records(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluation records of a run's ``metrics.jsonl`` (those with ``val_`` keys), in order."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [r for r in read_metrics(path) if any(str(k).startswith("val_") for k in r)]


def metric_value(record: dict[str, Any], metric: str, where: str) -> float:
    """``record[metric]`` as a float; a metric the recipe does not produce is a one-line error listing them."""
    if metric not in record:
        names = ", ".join(sorted(k for k in record if str(k).startswith("val_")))
        raise ConfigError(f"--metric {metric}: not a validation metric of this recipe ({where} has: {names})")
    return float(record[metric])


class EvalReporter:
    """Wraps a trial's objective; reports every evaluation's ``metric`` to ``trial`` (see the module docstring)."""

    def __init__(self, trial: Any, run_dir: Path, metric: str) -> None:
        self.trial, self.run_dir, self.metric = trial, run_dir, metric
        self.in_eval = False
        self.reported: set[int] = set()

    def wrap(self, objective: Objective) -> Objective:
        """The runners' ``wrap_objective``."""
        def observed(model: nn.Module, batch: dict[str, Any]) -> Any:
            if model.training and self.in_eval:
                self.in_eval = False
                self.report()
            elif not model.training:
                self.in_eval = True
            return objective(model, batch)

        return observed

    def report(self, final: bool = False) -> None:
        """Report every evaluation not reported yet; raise ``optuna.TrialPruned`` when the pruner says so
        (not for the ``final`` evaluations: a trial that reached its end is complete)."""
        import optuna

        for record in eval_records(self.run_dir):
            step = int(record["step"])
            if step in self.reported:
                continue
            value = metric_value(record, self.metric, str(self.run_dir / "metrics.jsonl"))
            self.reported.add(step)
            if not math.isfinite(value):
                raise optuna.TrialPruned(f"{self.metric} is {value} at step {step}")
            self.trial.report(value, step)
            if not final and self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}: {self.metric} {value:.4f}")
