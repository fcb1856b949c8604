"""``fromzero tune``: an Optuna study over a pretrain or finetune recipe (docs/19-tuning.md)."""

from __future__ import annotations

import argparse

from fromzero.cli.options import Handler, add_no_progress, non_negative_int, positive_int


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("tune", help="hyperparameter search (Optuna) over a pretrain or finetune recipe: grid, "
                                    "random or TPE, pruned, resumable, several workers on one storage")
    p.add_argument("recipe", help="pretrain or finetune recipe YAML; extra --section.key=value apply to every trial")
    p.add_argument("--space", required=True, help="search-space YAML: dotted recipe keys -> {type: float | int | "
                                                  "categorical, ...}; a plain value fixes the key")
    p.add_argument("--sampler", choices=("grid", "random", "tpe"), default="tpe",
                   help="grid (every point once; ranges need step or grid: [...]), random, or TPE (default)")
    p.add_argument("--trials", type=positive_int, default=None,
                   help="finished (complete + pruned) trials the study ends with, counting earlier runs of the same "
                        "study; grid default: every point")
    p.add_argument("--storage", default=None, help="Optuna storage: sqlite:///study.db (one machine) or "
                                                   "postgresql://user:pw@host/db (several); default "
                                                   "sqlite:///<out>/study.db")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes sharing the storage")
    p.add_argument("--study", default=None, help="study name in the storage (default: the recipe's file name)")
    p.add_argument("--out", default=None, help="study folder: trial_NNNN/ runs, study.json, best_recipe.yaml, "
                                               "plots/ (default runs/tune_<recipe name>)")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                   help="stop bad trials at an evaluation (default median)")
    p.add_argument("--pruner-warmup-trials", type=non_negative_int, default=2,
                   help="median: finished trials before pruning starts (default 2)")
    p.add_argument("--metric", default="val_loss", help="validation metric to optimise (default val_loss)")
    p.add_argument("--direction", choices=("minimize", "maximize"), default=None,
                   help="default: minimize for losses and perplexity, else maximize")
    p.add_argument("--seed", type=non_negative_int, default=0, help="sampler seed (default 0)")
    p.add_argument("--heartbeat", type=positive_int, default=10,
                   help="seconds between a running trial's heartbeats; a trial silent for 2 heartbeats is stale "
                        "(its worker died) and is replaced (default 10)")
    add_no_progress(p)
    return {"tune": _tune}


def _tune(args: argparse.Namespace) -> int:
    from fromzero.tune import TuneOptions, tune

    options = TuneOptions(space=args.space, sampler=args.sampler, trials=args.trials, storage=args.storage,
                          workers=args.workers, study=args.study, out=args.out, pruner=args.pruner,
                          metric=args.metric, direction=args.direction, seed=args.seed, heartbeat_s=args.heartbeat,
                          pruner_warmup_trials=args.pruner_warmup_trials)
    summary = tune(args.recipe, args.overrides, options, progress=not args.no_progress)
    counts = summary["counts"]
    print(f"\nstudy {summary['study']}: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
          f"{counts['FAIL']} failed ({summary['ran']} run now); folder {summary['out']}")
    best = summary["best"]
    if best:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
        print(f"best: trial {best['number']}, {summary['metric']} {best['value']:.4f} ({params})")
    for line in summary["skipped"]:
        print(line)
    for path in summary["files"]:
        print(f"wrote {path}")
    return 0
