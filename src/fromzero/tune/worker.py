"""A worker: take the next due trial under the study lock, run it, repeat until the study has its trials.

``--trials N`` means the study ends with exactly N finished trials (COMPLETE + PRUNED). Under the lock a
worker first fails stale trials (RUNNING ones whose worker stopped sending heartbeats: a killed process),
then counts finished + running trials; below N it takes one (for the grid sampler: a WAITING trial holding
a grid point that no COMPLETE, PRUNED, RUNNING or WAITING trial holds yet, enqueued first if needed). At N
with trials still running elsewhere it waits for them (they finish, or go stale and are failed, which makes
a new trial due). Failed trials do not count, so a killed trial is replaced and the study still ends with N.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from typing import Any

from fromzero.tune.space import Space
from fromzero.tune.storage import open_storage, study_lock
from fromzero.tune.trial import TrialSetup, mark, run_trial, trial_dir


@dataclass(frozen=True)
class StudyRef:
    """Where the study is and how its trials are drawn (picklable: spawned workers receive it)."""

    storage: str
    name: str
    sampler: str  # grid | random | tpe
    pruner: str  # median | hyperband | none
    trials: int
    seed: int
    pruner_warmup_trials: int
    min_resource: int  # the pruners' first step worth judging: the recipe's eval_every


def make_sampler(ref: StudyRef, worker: int, start: int) -> Any:
    """Random or TPE, seeded per worker and per start (so no two draw the same sequence); the grid's points are
    fixed params of enqueued trials, so any sampler serves it."""
    import optuna

    seed = ref.seed + 1000 * worker + start
    if ref.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, ref.trials // 3)))
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(ref: StudyRef) -> Any:
    """Median (after ``pruner_warmup_trials`` finished trials), Hyperband over training steps, or none."""
    import optuna

    if ref.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=ref.pruner_warmup_trials, n_warmup_steps=0)
    if ref.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, ref.min_resource), max_resource="auto")
    return optuna.pruners.NopPruner()


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _enqueue_grid(study: Any, space: Space, trials: int) -> None:
    """Enqueue each of the study's grid points (its first ``trials``) that no live or finished trial holds."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    held = {_key(t.system_attrs.get("fixed_params", t.params)) for t in study.get_trials(deepcopy=False, states=live)}
    for point in space.grid()[:trials]:
        if _key(point) not in held:
            study.enqueue_trial(point)


def _fail_stale(study: Any, out: Any) -> None:
    """Fail RUNNING trials whose heartbeat stopped; mark their run directories (where this machine has them)."""
    import optuna
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # marked experimental since Optuna 2.9
        optuna.storages.fail_stale_trials(study)
    for t in running:
        if study._storage.get_trial(t._trial_id).state == TrialState.FAIL:
            path = trial_dir(out, t.number)
            if path.exists():
                mark(path, t.number, "failed", t.params, reason="its worker stopped (killed); replaced by a new trial")


def _next_trial(study: Any, ref: StudyRef, setup: TrialSetup) -> tuple[Any, int]:
    """Under the study lock: (a trial to run, or None; how many trials are running elsewhere)."""
    from optuna.trial import TrialState

    with study_lock(study._storage, ref.storage, ref.name):
        _fail_stale(study, setup.out)
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if done + running >= ref.trials:
            return None, running
        if ref.sampler == "grid":
            _enqueue_grid(study, setup.space, ref.trials)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize": we beat ourselves
            return study.ask(), running


def work(ref: StudyRef, setup: TrialSetup, worker: int = 0, show_progress: bool = True) -> int:
    """Run trials until the study has ``ref.trials`` finished ones; returns how many this worker ran."""
    import optuna

    from fromzero.progress import progress

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(ref.storage, setup.heartbeat_s)
    start = len(optuna.load_study(study_name=ref.name, storage=storage).get_trials(deepcopy=False))
    study = optuna.load_study(study_name=ref.name, storage=storage, sampler=make_sampler(ref, worker, start),
                              pruner=make_pruner(ref))
    ran = 0
    with progress(total=ref.trials, desc=f"tune worker {worker}", unit="trial", enabled=show_progress) as bar:
        while True:
            trial, running = _next_trial(study, ref, setup)
            if trial is None:
                if running == 0:
                    return ran
                time.sleep(setup.heartbeat_s)  # wait for the others: they finish, or go stale and are failed
                continue
            state = run_trial(study, trial, setup)
            ran += 1
            bar.update(1)
            bar.set_postfix(trial=trial.number, state=state)


def work_in_child(ref: StudyRef, setup: TrialSetup, worker: int, show_progress: bool) -> tuple[int, str | None]:
    """A spawned worker's entry: (trials run, the one-line error of a user error or None)."""
    from fromzero.errors import FromZeroError

    try:
        return work(ref, setup, worker, show_progress), None
    except FromZeroError as err:
        return 0, str(err)
