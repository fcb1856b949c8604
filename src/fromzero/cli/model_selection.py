"""``fromzero cv`` (k-fold cross-validation of a fine-tuning recipe) and ``fromzero ensemble`` (fine-tuned
classifiers combined into one run directory); docs/21-cross-validation-and-ensembles.md."""

from __future__ import annotations

import argparse
from typing import Any

from fromzero.cli.options import Handler, add_no_progress, non_negative_int

SHOWN = ("accuracy", "f1_macro", "f1_micro", "mse", "mae", "r2", "subset_accuracy")  # table columns, if present


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("cv", help="k-fold cross-validation of a sequence-classification fine-tuning recipe or an "
                                  "image_classification recipe (stratified); --section.key=value override it")
    p.add_argument("recipe", help="fine-tuning recipe YAML (task.kind: sequence_classification) or vision recipe "
                                  "(task: image_classification)")
    p.add_argument("--folds", type=int, default=5, help="number of folds k >= 2 (default 5)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the fold assignment (default 0)")
    p.add_argument("--out", default=None, help="folder: fold_<i>/ runs, splits/, cv.json (default runs/cv_<recipe>)")
    p.add_argument("--validation", choices=("fold", "recipe"), default="fold",
                   help="early stopping / best checkpoint on the held-out fold (default) or the recipe's "
                        "validation file")
    p.add_argument("--resume", action="store_true", help="keep finished folds, resume an interrupted one")
    add_no_progress(p)

    p = sub.add_parser("ensemble", help="combine fine-tuned classifiers (mean, vote or weighted) into one run "
                                        "directory, scored against each member")
    p.add_argument("runs", nargs="+", help="fine-tuned single-label sequence_classification run directories, or "
                                          "image_classification runs")
    p.add_argument("--method", choices=("mean", "vote", "weighted"), default="mean",
                   help="mean of probabilities (default), majority vote, or probabilities weighted by each member's "
                        "validation metric")
    p.add_argument("--out", required=True, help="the ensemble's run directory (new or empty)")
    p.add_argument("--split", default="test", help="split scored: test (default) or validation")
    p.add_argument("--weight-metric", default=None,
                   help="weighted: the members' best validation metric used as weight (accuracy, f1_macro, "
                        "f1_micro; default f1_macro; image runs: accuracy)")
    add_no_progress(p)
    return {"cv": _cv, "ensemble": _ensemble}


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return [k for k in SHOWN if all(k in r for r in rows)] or [k for k in rows[0] if k != "loss"][:4]


def _cv(args: argparse.Namespace) -> int:
    from fromzero.tune.cross_validation import CV_INFO, CVOptions, cross_validate

    opts = CVOptions(folds=args.folds, seed=args.seed, out=args.out, validation=args.validation, resume=args.resume)
    summary = cross_validate(args.recipe, args.overrides, opts, show=not args.no_progress)
    cols = _columns(summary["per_fold"])
    print(f"\n{summary['folds']}-fold cross-validation ({summary['splitter']}, {summary['examples']:,} examples)")
    print(f"{'fold':>8}  " + "  ".join(f"{c:>12}" for c in cols))
    for i, metrics in enumerate(summary["per_fold"]):
        print(f"{i:>8}  " + "  ".join(f"{metrics[c]:>12.4f}" for c in cols))
    stats = summary["metrics"]
    print(f"{'mean':>8}  " + "  ".join(f"{stats[c]['mean']:>12.4f}" for c in cols))
    print(f"{'std':>8}  " + "  ".join(f"{stats[c]['std']:>12.4f}" for c in cols))
    print(f"fold runs: {summary['out']}/fold_<i>; summary: {summary['out']}/{CV_INFO}")
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from fromzero.tune.ensemble import build_ensemble

    content = build_ensemble(args.runs, args.method, args.out, split=args.split, weight_metric=args.weight_metric,
                             show=not args.no_progress)
    ev = content["evaluation"]
    rows = [m["metrics"] for m in ev["members"]] + [ev["ensemble"]]
    cols = _columns(rows)
    print(f"\n{args.method} ensemble of {len(ev['members'])} runs on {ev['split']} ({ev['examples']:,} examples)")
    width = max(len(m["run"]) for m in ev["members"]) + 2
    print(f"{'run':<{width}}{'weight':>8}  " + "  ".join(f"{c:>10}" for c in cols))
    for m, w in zip(ev["members"], content["weights"], strict=True):
        print(f"{m['run']:<{width}}{w:>8.3f}  " + "  ".join(f"{m['metrics'][c]:>10.4f}" for c in cols))
    print(f"{'ensemble':<{width}}{'':>8}  " + "  ".join(f"{ev['ensemble'][c]:>10.4f}" for c in cols))
    print(f"ensemble run directory: {content['out']} (`fromzero eval {content['out']}`, `fromzero serve "
          f"{content['out']}`)")
    return 0
