"""An image run, end to end: recipe -> images -> model -> the one Trainer -> run directory -> test scores.

    run_dir/config.yaml         the resolved recipe (``fromzero train run_dir/config.yaml`` repeats it)
    run_dir/vision.json         what loading needs: task, family and config, class names, channels, image
                                size, pixel mean / std; plus parameters, images/s, wall time, best step
    run_dir/labels.txt          class names, one per line, in class-id order
    run_dir/model.safetensors   the best evaluation's state (BatchNorm running statistics included)
    run_dir/eval.json           test metrics ("test"); plots/: loss curve and the task's pictures
    run_dir/metrics.jsonl, tensorboard/
    run_dir/checkpoints/        while training only (``--resume``); removed when the run completes

Batches are pure functions of (seed, step, micro) (``data.image_batches``), augmentation included, and the
Trainer restores the RNG and BatchNorm statistics with the weights, so a resumed run continues the same
trajectory bit for bit.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model

from fromzero.atomic import write_text, write_with
from fromzero.config import dump_yaml, to_dict
from fromzero.data.datasets.image_sources import load_image_data
from fromzero.data.image_batches import ImageBatches, channel_stats
from fromzero.data.image_set import ImageSet, ImageSplits
from fromzero.errors import ConfigError
from fromzero.models import build_model, family_of
from fromzero.runs import VISION_INFO, open_run_dir, run_dir_for
from fromzero.runs.report import write_report
from fromzero.train.checkpoint import latest_checkpoint
from fromzero.train.distributed import world
from fromzero.train.hooks import WrapObjective
from fromzero.train.loggers import plot_losses, validation_at
from fromzero.train.trainer import Trainer, TrainResult
from fromzero.vision.adversarial import image_adversarial_objective
from fromzero.vision.evaluate import evaluate_image_run
from fromzero.vision.hooks import VisionHooks
from fromzero.vision.init_weights import load_init_weights
from fromzero.vision.recipe import VisionRecipe, load_vision_recipe, recipe_dict
from fromzero.vision.tasks import build_objective, model_fill

# What each task needs in the data, and where to get it.
NEEDS = {"image_classification": ("labels", "fashion-mnist, digits or an image folder"),
         "detection": ("boxes", "scenes or a COCO JSON"), "segmentation": ("masks", "scenes")}


@dataclass
class VisionResult:
    run_dir: Path
    train: TrainResult
    info: dict[str, Any]
    test_metrics: dict[str, Any]


def _check_data(recipe: VisionRecipe, splits: ImageSplits, file: str) -> None:
    need = NEEDS.get(recipe.task)
    if need and getattr(splits.train, need[0]) is None:
        raise ConfigError(f"{file}: data.source: {recipe.data.source} has no {need[0]}, which {recipe.task} "
                          f"needs; use {need[1]}")


def _stats(recipe: VisionRecipe, train: ImageSet) -> tuple[list[float], list[float]]:
    if recipe.task == "denoising":  # the model maps [0, 1] to [0, 1]
        return [0.0] * train.channels, [1.0] * train.channels
    return channel_stats(train)


def train_vision(recipe_path: str | Path | None, overrides: list[str] | None = None, *,
                 out: str | Path | None = None, resume: bool = False, progress: bool = True,
                 wrap_objective: WrapObjective | None = None) -> VisionResult:
    """Run a vision recipe into a run directory and score it on the test split (one process).
    ``wrap_objective(objective)`` returns what the Trainer trains (a tuning study reports through it)."""
    recipe = load_vision_recipe(recipe_path, overrides)
    file = str(recipe_path or "<overrides>")
    if world().distributed:  # BatchNorm statistics and best-state hooks are per process
        raise ConfigError(f"{file}: `fromzero train` runs image recipes on one process, but this one was started "
                          f"as rank {world().rank} of {world().world_size}; run it without torchrun "
                          "(multi-process training covers pretrain and finetune)")
    run_dir = run_dir_for(out, recipe.out, recipe_path, "vision")
    saved = recipe_dict(recipe)
    open_run_dir(run_dir, saved, resume, ("task", "data", "model", "init", "seed", "augment", "noise", "objective"),
                 lambda config: recipe_dict(load_vision_recipe(config)))
    if recipe.init and not (Path(recipe.init) / VISION_INFO).is_file():
        raise ConfigError(f"{file}: init: {recipe.init} is not a finished image run (no {VISION_INFO})")
    splits = load_image_data(recipe.data, recipe.seed, file)
    _check_data(recipe, splits, file)
    torch.manual_seed(recipe.seed)
    cfg = recipe.model_config(model_fill(recipe.task, splits.train), file)
    model = build_model(cfg)
    init_info = load_init_weights(model, recipe.init, file) if recipe.init else None
    mean, std = _stats(recipe, splits.train)
    objective = image_adversarial_objective(build_objective(recipe.task, recipe.objective, file), recipe.adversarial,
                                            mean, std)
    if wrap_objective is not None:
        objective = wrap_objective(objective)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", dump_yaml(saved))
    info = {"task": recipe.task, "family": family_of(cfg).name, "model": to_dict(cfg),
            "class_names": splits.train.class_names, "channels": splits.train.channels,
            "image_size": list(splits.train.size), "fixed_size": recipe.task != "denoising", "mean": mean,
            "std": std, "detect": vars(recipe.detect) if recipe.task == "detection" else None,
            "parameters": sum(p.numel() for p in model.parameters()), "init": init_info,
            "images": {"train": len(splits.train), "validation": len(splits.validation), "test": len(splits.test)}}
    return _train(run_dir, recipe, model, objective, splits, info, progress, resume)


def _train(run_dir: Path, recipe: VisionRecipe, model: torch.nn.Module, objective, splits: ImageSplits,
           info: dict[str, Any], progress: bool, resume: bool) -> VisionResult:
    cfg = recipe.train
    common = {"mean": info["mean"], "std": info["std"], "noise": recipe.noise, "patch": info["model"].get("patch_size")}
    train = ImageBatches(splits.train, recipe.task, cfg.batch_size, seed=recipe.seed, shuffle=True,
                         grad_accum=cfg.grad_accum, augment=recipe.augment, **common)
    val = ImageBatches(splits.validation, recipe.task, cfg.batch_size, seed=recipe.seed, **common)
    cfg = replace(cfg, eval_batches=min(cfg.eval_batches, len(val)))
    hooks = VisionHooks(model, recipe.task, val, cfg.eval_batches, splits.train.class_names, vars(recipe.detect))
    trainer = Trainer(model, objective, train, val, cfg, recipe.optim, run_dir, hooks=hooks,
                      select_metric=f"val_{recipe.metric}", progress=progress)
    resumed = latest_checkpoint(trainer.ckpt_dir) if resume else None
    t0 = time.perf_counter()
    result = trainer.fit(resume=resumed is not None)
    wall = time.perf_counter() - t0
    hooks.restore_best()
    model = trainer.model.cpu().eval()
    write_with(run_dir / "model.safetensors", lambda tmp: save_model(model, str(tmp)))
    write_text(run_dir / "labels.txt", "".join(f"{x}\n" for x in splits.train.class_names))
    steps_run = result.step - (resumed.step if resumed else 0)
    info.update({"steps": result.step, "best_step": hooks.best_step, "select_metric": recipe.metric,
                 "best_validation": (result.val_metrics if hooks.best_step is None
                                     else validation_at(run_dir / "metrics.jsonl", hooks.best_step)),
                 "stopped_early": result.stopped_early, "train_wall_s": wall,
                 "images_per_s": steps_run * cfg.batch_size * cfg.grad_accum / max(wall, 1e-9),
                 "device": str(trainer.device), "threads": torch.get_num_threads(),
                 "resumed_from_step": resumed.step if resumed else None})
    write_text(run_dir / VISION_INFO, json.dumps(info, indent=1))
    plot_losses(run_dir / "metrics.jsonl", run_dir / "plots" / "loss.png", title=run_dir.name)
    test_metrics = evaluate_image_run(run_dir, splits.test)
    shutil.rmtree(trainer.ckpt_dir, ignore_errors=True)  # complete: checkpoints served resuming only
    write_report(run_dir)  # report.html: config, curves, test metrics and pictures
    return VisionResult(run_dir, result, info, test_metrics)

