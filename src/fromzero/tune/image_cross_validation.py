"""``fromzero cv`` for image-classification recipes: k runs of ``fromzero train``, fold i of the training
images held out as test (``data.fold``, data/datasets/image_folds.py: stratified, seeded).

    OUT/fold_<i>/    fold i's image run directory (eval.json: the held-out fold's metrics)
    OUT/cv.json      per-fold metrics, mean and sample standard deviation (as for text recipes)

No fold files are written: each fold run's config.yaml holds ``data.fold`` and reproduces its split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fromzero.atomic import require_new_folder, write_text
from fromzero.errors import ConfigError
from fromzero.progress import progress
from fromzero.runs import VISION_INFO, read_run_json
from fromzero.tune.cv_summary import CV_INFO, CVOptions, summarize
from fromzero.vision.evaluate import evaluate_image_run
from fromzero.vision.recipe import load_vision_recipe
from fromzero.vision.runner import train_vision


def fold_overrides(opts: CVOptions, index: int) -> list[str]:
    """The data.fold overrides of fold ``index``."""
    return [f"--data.fold.k={opts.folds}", f"--data.fold.index={index}", f"--data.fold.seed={opts.seed}",
            f"--data.fold.validation={opts.validation}"]


def _check(recipe_path: str | Path, overrides: list[str], opts: CVOptions, out: Path) -> None:
    if opts.folds < 2:
        raise ConfigError(f"--folds: must be >= 2, got {opts.folds}")
    recipe = load_vision_recipe(recipe_path, overrides)
    if recipe.task != "image_classification":
        raise ConfigError(f"{recipe_path}: task: cv supports image_classification (and text sequence_classification) "
                          f"recipes, got {recipe.task}")
    if recipe.data.fold.k is not None:
        raise ConfigError(f"{recipe_path}: data.fold: `fromzero cv` sets the folds itself; remove data.fold.k")
    plan = {"folds": opts.folds, "seed": opts.seed, "validation": opts.validation}
    plan_file = out / "plan.json"
    if not opts.resume:
        require_new_folder(out, "choose another --out, or pass --resume to continue that cross-validation")
    elif not plan_file.is_file():
        raise ConfigError(f"{out}: nothing to resume (no plan.json); run without --resume")
    elif read_run_json(plan_file) != plan:
        raise ConfigError(f"{plan_file}: this cross-validation was started with {read_run_json(plan_file)}; "
                          "--resume needs the same --folds, --seed and --validation")
    out.mkdir(parents=True, exist_ok=True)
    write_text(plan_file, json.dumps(plan))


def _run_fold(recipe_path: str | Path, overrides: list[str], run_dir: Path, show: bool) -> tuple[dict, dict]:
    """Train (or finish, or reuse) one fold's run; returns (its held-out metrics, its split sizes)."""
    if not (run_dir / VISION_INFO).is_file():
        resume = (run_dir / "config.yaml").is_file()  # an interrupted fold continues from its checkpoint
        train_vision(recipe_path, overrides, out=run_dir, progress=show, resume=resume)
    saved = read_run_json(run_dir / "eval.json") if (run_dir / "eval.json").is_file() else {}
    metrics = saved["test"]["metrics"] if "test" in saved else evaluate_image_run(run_dir)
    images = read_run_json(run_dir / VISION_INFO).get("images", {})
    return metrics, {"train": images.get("train"), "heldout": images.get("test")}


def cross_validate_images(recipe_path: str | Path, overrides: list[str], opts: CVOptions, show: bool = True
                          ) -> dict[str, Any]:
    """Every fold of the image recipe ``recipe_path``; writes OUT/cv.json and returns its content."""
    out = Path(opts.out) if opts.out else Path("runs") / f"cv_{Path(recipe_path).stem}"
    _check(recipe_path, overrides, opts, out)
    per_fold, sizes = [], []
    for i in progress(range(opts.folds), desc="cv folds", unit="fold", enabled=show):
        metrics, size = _run_fold(recipe_path, [*overrides, *fold_overrides(opts, i)], out / f"fold_{i}", show)
        per_fold.append({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        sizes.append(size)
    summary = {"recipe": str(recipe_path), "overrides": overrides, "folds": opts.folds, "seed": opts.seed,
               "validation": opts.validation, "splitter": "StratifiedKFold", "fold_sizes": sizes,
               "examples": sum(s["heldout"] or 0 for s in sizes),
               "runs": [str(out / f"fold_{i}") for i in range(opts.folds)], "per_fold": per_fold,
               "metrics": summarize(per_fold)}
    write_text(out / CV_INFO, json.dumps(summary, indent=1))
    return {**summary, "out": str(out)}
