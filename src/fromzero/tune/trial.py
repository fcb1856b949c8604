"""One trial: the recipe run with the trial's values as overrides into ``<out>/trial_NNNN/``, told to Optuna.

A finished trial's run directory holds ``trial.json`` (number, state, params, value): ``complete``,
``pruned`` (by the pruner, or a diverged loss: a bad configuration, not a broken study) or ``failed``
(an error, or a worker killed mid-trial, found stale on a later start). Pruned and failed directories are
kept as they were when the trial stopped.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.errors import ConfigError, TrainingDivergedError
from fromzero.tune.recipe_check import runner_for
from fromzero.tune.reporter import EvalReporter, eval_records, metric_value
from fromzero.tune.space import Space, override

TRIAL_INFO = "trial.json"


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a study shares (picklable: spawned workers receive it)."""

    recipe: str
    overrides: tuple[str, ...]  # the command's overrides, then the space's fixed keys
    space: Space
    out: Path
    metric: str
    heartbeat_s: int


def trial_dir(out: Path, number: int) -> Path:
    """Where trial ``number`` runs."""
    return out / f"trial_{number:04d}"


def mark(run_dir: Path, number: int, state: str, params: dict[str, Any], value: float | None = None,
         reason: str | None = None) -> None:
    """Write ``trial.json`` into a trial's run directory (created if the trial died before making it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"number": number, "state": state, "params": params, "value": value, "reason": reason}
    write_text(run_dir / TRIAL_INFO, json.dumps(info, indent=1) + "\n")


class _Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds while it runs (a killed worker stops beating)."""

    def __init__(self, storage: Any, trial_id: int, interval: int) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, args=(storage, trial_id, interval), daemon=True)

    def _beat(self, storage: Any, trial_id: int, interval: int) -> None:
        while not self.stop.is_set():
            # a busy database: the next beat retries (a trial is only stale after two missed beats)
            with contextlib.suppress(Exception):
                storage.record_heartbeat(trial_id)
            self.stop.wait(interval)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _final_value(result: Any, run_dir: Path, metric: str) -> float:
    """The metric of the model the run directory keeps: the best evaluation for a fine-tune (its best weights
    are restored), the last evaluation for pretraining."""
    records = eval_records(run_dir)
    if not records:
        raise ConfigError(f"{run_dir}: the run logged no validation metrics; tuning needs an evaluation (set "
                          "train.eval_every and keep a validation split)")
    best_step = (getattr(result, "info", None) or {}).get("best_step")
    chosen = [r for r in records if r.get("step") == best_step] or records
    return metric_value(chosen[-1], metric, str(run_dir / "metrics.jsonl"))


def run_trial(study: Any, trial: Any, setup: TrialSetup) -> str:
    """Run one asked trial to its end and tell the study; returns the state (``complete`` / ``pruned``).
    An error marks the trial failed and propagates."""
    import optuna

    values = {p.key: p.suggest(trial) for p in setup.space.params}
    run_dir = trial_dir(setup.out, trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    overrides = [*setup.overrides, *(override(k, v) for k, v in values.items())]
    reporter = EvalReporter(trial, run_dir, setup.metric)
    runner = runner_for(setup.recipe)
    try:
        with _Heartbeat(study._storage, trial._trial_id, setup.heartbeat_s):
            result = runner.run(setup.recipe, overrides, out=run_dir, progress=False, wrap_objective=reporter.wrap)
            reporter.report(final=True)
            value = _final_value(result, run_dir, setup.metric)
    except optuna.TrialPruned as why:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        mark(run_dir, trial.number, "pruned", values, reason=str(why) or "pruned")
        return "pruned"
    except TrainingDivergedError as err:  # a configuration that diverges is a bad one: pruned, not broken
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        mark(run_dir, trial.number, "pruned", values, reason=f"diverged: {err}")
        return "pruned"
    except BaseException as err:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        mark(run_dir, trial.number, "failed", values, reason=f"{type(err).__name__}: {err}")
        raise
    study.tell(trial, value)
    mark(run_dir, trial.number, "complete", values, value=value)
    return "complete"
