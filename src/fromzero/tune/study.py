"""``fromzero tune``: an Optuna study over any pretrain or finetune recipe, resumable and shared by workers.

Every input is checked before anything is written (the space file against the recipe, the sampler's needs,
the storage URL). The study lives in the storage (``sqlite:///...`` on one machine, ``postgresql://...``
across machines); running the same command again continues it: trials a killed process left RUNNING go
stale (no heartbeat) and are failed and replaced, so the study ends with exactly ``--trials`` finished
(COMPLETE + PRUNED) trials. ``--workers K`` spawns K processes that share the storage (see ``worker.py``).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fromzero.errors import ConfigError, FromZeroError
from fromzero.tune.recipe_check import check_space, runner_for
from fromzero.tune.space import load_space
from fromzero.tune.storage import check_storage_url, open_storage
from fromzero.tune.trial import TrialSetup
from fromzero.tune.worker import StudyRef, work, work_in_child

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "hyperband", "none")


@dataclass(frozen=True)
class TuneOptions:
    """The command's options (see ``fromzero tune --help``)."""

    space: str
    sampler: str = "tpe"
    trials: int | None = None  # finished (COMPLETE + PRUNED) trials the study ends with; grid: all points
    storage: str | None = None  # default sqlite:///<out>/study.db
    workers: int = 1
    study: str | None = None  # default: the recipe's file name
    out: str | None = None  # default runs/tune_<recipe name>
    pruner: str = "median"
    metric: str = "val_loss"
    direction: str | None = None  # default: minimize for losses / perplexity, else maximize
    seed: int = 0
    heartbeat_s: int = 10
    pruner_warmup_trials: int = 2


def _trials(options: TuneOptions, setup: TrialSetup) -> int:
    if options.sampler != "grid":
        if options.trials is None:
            raise ConfigError(f"--trials: required with --sampler {options.sampler} (the number of finished trials "
                              "the study ends with)")
        return options.trials
    points = len(setup.space.grid())
    if options.trials is not None and options.trials > points:
        raise ConfigError(f"--trials {options.trials}: the grid of {setup.space.file} has only {points} points; "
                          f"give --trials {points} or fewer")
    return options.trials or points


def plan(recipe: str, overrides: list[str], options: TuneOptions) -> tuple[StudyRef, TrialSetup, dict[str, Any]]:
    """Check every input and fix the study's shape; writes nothing."""
    from fromzero.train.trainer import lower_is_better

    if options.sampler not in SAMPLERS or options.pruner not in PRUNERS:
        raise ConfigError(f"--sampler / --pruner: expected one of {SAMPLERS} / {PRUNERS}")
    space = load_space(options.space)
    runner = runner_for(recipe)
    loaded = check_space(space, recipe, runner, overrides)
    metric = options.metric if options.metric.startswith("val_") else f"val_{options.metric}"
    direction = options.direction or ("minimize" if lower_is_better(metric) else "maximize")
    out = Path(options.out or f"runs/tune_{Path(recipe).stem}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file is there; give a folder for the study")
    storage = options.storage or f"sqlite:///{out}/study.db"
    if options.storage:
        check_storage_url(storage)
    setup = TrialSetup(str(recipe), (*overrides, *space.fixed_overrides()), space, out, metric, options.heartbeat_s)
    ref = StudyRef(storage, options.study or Path(recipe).stem, options.sampler, options.pruner,
                   _trials(options, setup), options.seed, options.pruner_warmup_trials,
                   int(getattr(loaded.train, "eval_every", 1) or 1))
    info = {"study": ref.name, "recipe": str(recipe), "command": runner.command, "space": space.describe(),
            "overrides": list(overrides), "sampler": ref.sampler, "pruner": ref.pruner, "trials": ref.trials,
            "metric": metric, "direction": direction, "out": str(out.resolve()), "storage": storage}
    return ref, setup, info


_SAME = ("recipe", "space", "overrides", "sampler", "metric", "direction", "out")


def open_study(ref: StudyRef, setup: TrialSetup, info: dict[str, Any]) -> Any:
    """Create the study, or load it and check that it was started with the same recipe, space and objective."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if ref.storage == f"sqlite:///{setup.out}/study.db":
        setup.out.mkdir(parents=True, exist_ok=True)  # the default storage lives in the study folder
    storage = open_storage(ref.storage, setup.heartbeat_s)
    study = optuna.create_study(study_name=ref.name, storage=storage, direction=info["direction"],
                                load_if_exists=True)
    saved = study.user_attrs.get("fromzero")
    if saved is None:
        study.set_user_attr("fromzero", {k: info[k] for k in _SAME})
    else:
        for key in _SAME:
            if saved.get(key) != info[key]:
                raise ConfigError(f"--study {ref.name}: this study in {ref.storage} was started with another {key} "
                                  f"({saved.get(key)!r}); rerun with the same one, or give a new --study name")
    setup.out.mkdir(parents=True, exist_ok=True)
    return study


def _run_workers(ref: StudyRef, setup: TrialSetup, workers: int, show_progress: bool) -> int:
    """Run the workers (in this process when there is one); returns the trials run; a worker's user error is
    raised here in one line."""
    if workers == 1:
        return work(ref, setup, 0, show_progress)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(work_in_child, ref, setup, i, show_progress) for i in range(workers)]
        results = [f.result() for f in futures]
    errors = [err for _, err in results if err]
    if errors:
        raise FromZeroError(errors[0])
    return sum(n for n, _ in results)


def tune(recipe: str, overrides: list[str], options: TuneOptions, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) a study to its ``--trials`` finished trials; returns the summary ``study.json`` holds
    plus ``files`` written, ``skipped`` plots and ``ran`` (trials run by this call)."""
    from fromzero.tune.outputs import write_outputs

    if options.workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {options.workers}")
    ref, setup, info = plan(recipe, overrides, options)
    study = open_study(ref, setup, info)
    ran = _run_workers(ref, setup, options.workers, progress)
    summary = write_outputs(study, setup, info)
    summary["ran"] = ran
    return summary
