"""``fromzero train`` (image runs from a vision recipe, recommender runs from a recommender recipe) and
``fromzero predict`` (images through a run)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fromzero.cli.options import Handler, add_no_progress, check_recipe_domain, positive_int, unit_interval


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("train", help="train an image model from a vision recipe (classification, detection, "
                                     "segmentation, denoising, MAE pretraining) or a recommender from a "
                                     "recommender recipe; --section.key=value override it")
    p.add_argument("recipe", nargs="?", help="vision recipe YAML (task: image_classification | detection | "
                                             "segmentation | denoising | mae) or recommender recipe YAML "
                                             "(task: recommendation)")
    p.add_argument("--out", help="run directory (default: the recipe's out, else runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the latest checkpoint in the run directory")
    add_no_progress(p)
    p.add_argument("--help-config", action="store_true", help="list every recipe key with its help")

    p = sub.add_parser("predict", help="run an image run on image files: print classes / boxes, write the "
                                       "annotated PNG")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...); converted to the run's channels")
    p.add_argument("--out", default="predictions", help="folder for the annotated PNGs (default: predictions/)")
    p.add_argument("--top-k", type=positive_int, default=3, help="classification: classes printed per image")
    p.add_argument("--score-threshold", type=unit_interval, default=None,
                   help="detection: smallest score printed and drawn (default: the run's)")
    p.add_argument("--convert", action="store_true",
                   help="convert images to the run's channel count (default: a mismatch is an error)")
    return {"train": _train, "predict": _predict}


def _train(args: argparse.Namespace) -> int:
    if args.help_config:
        from fromzero.config import describe
        from fromzero.recommend.recipe import RecommendRecipe
        from fromzero.vision.recipe import VisionRecipe

        print("vision recipes:\n" + "\n".join(describe(VisionRecipe)))
        print("\nrecommender recipes:\n" + "\n".join(describe(RecommendRecipe)))
        return 0
    from fromzero.errors import ConfigError

    if args.recipe is None:
        raise ConfigError("train: give a vision or recommender recipe, e.g. `fromzero train recipes/fashion_cnn.yaml`")
    check_recipe_domain(args.recipe, "train")
    if _is_recommender_recipe(args.recipe):
        return _train_recommender(args)
    from fromzero.vision.runner import train_vision

    result = train_vision(args.recipe, args.overrides, out=args.out, resume=args.resume,
                          progress=not args.no_progress)
    tr, info = result.train, result.info
    print(f"\nrun directory: {result.run_dir}")
    print(f"{info['family']} ({info['parameters']:,} parameters), {tr.step} steps in {tr.elapsed_s:.0f}s "
          f"({info['images_per_s']:,.0f} images/s); best step {info['best_step']}"
          + (" [stopped early]" if tr.stopped_early else ""))
    print("test: " + _metric_line(result.test_metrics))
    return 0


def _is_recommender_recipe(recipe: str) -> bool:
    from fromzero.config import load_yaml
    from fromzero.runs.run import is_recommend_recipe_data

    return Path(recipe).is_file() and is_recommend_recipe_data(load_yaml(recipe))


def _train_recommender(args: argparse.Namespace) -> int:
    from fromzero.recommend.runner import train_recommender

    result = train_recommender(args.recipe, args.overrides, out=args.out, resume=args.resume,
                               progress=not args.no_progress)
    info = result.info
    steps = f"{info['steps']} steps" if "steps" in info else "counted"
    print(f"\nrun directory: {result.run_dir}")
    print(f"{info['family']} ({info['parameters']:,} parameters, loss {info['loss']}), {steps} in "
          f"{info['train_wall_s']:.0f}s; {info['users']} users, {info['items']} items")
    print("test: " + _metric_line(result.test_metrics))
    return 0


def _metric_line(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float | int))


def _predict(args: argparse.Namespace) -> int:
    from fromzero.vision.predict import predict_files

    for line in predict_files(args.run_dir, args.images, Path(args.out), top_k=args.top_k,
                              score_threshold=args.score_threshold, convert=args.convert):
        print(line)
    return 0
