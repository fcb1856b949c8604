"""What a finished study leaves in its folder: ``study.json``, ``best_recipe.yaml`` and PNG plots.

``best_recipe.yaml`` is the original recipe with the command's overrides, the space's fixed keys and the
best trial's values applied (and ``out`` pointed at ``<study out>/best_run``), so the same command that ran
the trials (``fromzero pretrain`` / ``fromzero finetune``) trains it again.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.config import apply_overrides, dump_yaml, load_yaml
from fromzero.tune.recipe_check import runner_for
from fromzero.tune.space import override
from fromzero.tune.trial import TrialSetup

BEST_RECIPE = "best_recipe.yaml"
SUMMARY = "study.json"


def _trial_row(t: Any) -> dict[str, Any]:
    return {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
            "run_dir": t.user_attrs.get("run_dir"), "intermediate": {str(k): v for k, v in
                                                                   sorted(t.intermediate_values.items())},
            "seconds": t.duration.total_seconds() if t.duration else None}


def _redacted(url: str) -> str:
    """A storage URL without its password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def write_best_recipe(setup: TrialSetup, params: dict[str, Any], header: str) -> Path:
    """The recipe with the best values applied, written as ``best_recipe.yaml`` and loaded back as a check."""
    data = apply_overrides(load_yaml(setup.recipe), [*setup.overrides, *(override(k, v) for k, v in params.items())])
    data["out"] = str(setup.out / "best_run")
    path = setup.out / BEST_RECIPE
    write_text(path, header + dump_yaml(data))
    runner_for(path).load(path, [])  # the file must load with the same command
    return path


def _plots(study: Any, folder: Path, n_params: int) -> tuple[list[Path], list[str]]:
    """Optimisation history, parallel coordinates and parameter importances (PNG); reasons for any skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    plots = {"optimization_history": ovm.plot_optimization_history,
             "parallel_coordinate": ovm.plot_parallel_coordinate,
             "param_importances": ovm.plot_param_importances}
    skipped: dict[str, str] = {}
    if complete == 0:
        skipped = {name: "no completed trial" for name in plots}
    elif complete < 2 or n_params < 2:
        skipped["param_importances"] = (f"parameter importance needs >= 2 completed trials and > 1 searched key "
                                        f"(have {complete} and {n_params})")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plot in plots.items():
        if name in skipped:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
            ax = plot(study)
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(folder / f"{name}.png")
    return written, [f"{name}.png skipped: {why}" for name, why in skipped.items()]


def write_outputs(study: Any, setup: TrialSetup, info: dict[str, Any]) -> dict[str, Any]:
    """Write the study folder's summary, best recipe and plots; returns the summary (``files``, ``skipped``)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    summary: dict[str, Any] = {**info, "storage": _redacted(info["storage"]), "counts": counts, "best": None}
    files = []
    if complete:
        best = study.best_trial
        summary["best"] = _trial_row(best)
        header = (f"# fromzero tune: the best of study {study.study_name!r}: trial {best.number}, "
                  f"{info['metric']} = {best.value:.6g}\n# values found: {json.dumps(best.params)}\n")
        files.append(write_best_recipe(setup, best.params, header))
    plots, skipped = _plots(study, setup.out / "plots", len(setup.space.params))
    summary["trials"] = [_trial_row(t) for t in trials]
    summary["skipped"] = skipped
    write_text(setup.out / SUMMARY, json.dumps(summary, indent=1, default=str) + "\n")
    summary["files"] = [setup.out / SUMMARY, *files, *plots]
    return summary
