"""A recommender run, end to end: recipe -> ratings -> leave-last-out split -> model -> the one Trainer (or
counting) -> run directory -> full-ranking test scores.

    run_dir/config.yaml         the resolved recipe (``fromzero train run_dir/config.yaml`` repeats it)
    run_dir/recommender.json    family and config, loss, feature names, counts, timings, best validation
    run_dir/split.csv           the seeded split (every rating with train / validation / test)
    run_dir/items.csv           the catalogue in the model's item order
    run_dir/model.safetensors   the best evaluation's state
    run_dir/eval.json           test metrics ("test"): HR@k, NDCG@k, MRR, coverage@k (+ RMSE / MAE)
    run_dir/metrics.jsonl, tensorboard/, plots/, report.html; checkpoints/ while training only

Protocol: each user's last rating (by timestamp) is the test item, the one before it the validation item,
the rest is training. Validation ranks every item the user has not rated in training; test ranks every
item not rated in training or validation, with the validation item appended to the history. Batches and
negative samples are pure functions of (seed, step, micro), so a resumed run continues bit for bit.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_model

from fromzero.atomic import write_text, write_with
from fromzero.config import dump_yaml, to_dict
from fromzero.data.datasets.rating_sources import load_rating_data
from fromzero.data.interaction_split import leave_last_out, write_split
from fromzero.data.interactions import write_items_csv
from fromzero.errors import ConfigError
from fromzero.models import build_model, family_of
from fromzero.recommend.features import build_item_features
from fromzero.recommend.recipe import RecommendRecipe, load_recommend_recipe, recipe_dict
from fromzero.recommend.tasks import RunData, fit_counts, prepare_model, test_metrics, training_setup
from fromzero.runs import open_run_dir, run_dir_for
from fromzero.runs.recommender import ITEMS_FILE, RECOMMEND_INFO, SPLIT_FILE
from fromzero.runs.report import write_report
from fromzero.train.checkpoint import latest_checkpoint
from fromzero.train.distributed import world
from fromzero.train.hooks import WrapObjective
from fromzero.train.loggers import plot_losses, validation_at
from fromzero.train.trainer import Trainer, TrainResult


@dataclass
class RecommendResult:
    run_dir: Path
    info: dict[str, Any]
    test_metrics: dict[str, float]
    train: TrainResult | None  # None for counted families


def _check_k(k: int, n_items: int, split, n_users: int, file: str) -> None:
    """Every ranked user must have at least k unrated items left (their history and target excluded)."""
    known = np.bincount(np.concatenate([split.train.user, split.validation.user]), minlength=n_users)
    left = n_items - int(known.max()) - 1
    if k > left:
        raise ConfigError(f"{file}: k: {k} is more than the {left} items some user has left unrated; lower k")


def train_recommender(recipe_path: str | Path | None, overrides: list[str] | None = None, *,
                      out: str | Path | None = None, resume: bool = False, progress: bool = True,
                      wrap_objective: WrapObjective | None = None) -> RecommendResult:
    """Run a recommender recipe into a run directory and score it on the test split (one process)."""
    recipe = load_recommend_recipe(recipe_path, overrides)
    file = str(recipe_path or "<overrides>")
    loss, metric = recipe.loss(file), recipe.metric(file)
    if world().distributed:
        raise ConfigError(f"{file}: recommender runs train on one process; run `fromzero train` without torchrun")
    run_dir = run_dir_for(out, recipe.out, recipe_path, "recommender")
    saved = recipe_dict(recipe)
    open_run_dir(run_dir, saved, resume, ("data", "features", "model", "objective", "seed", "k"),
                 lambda config: recipe_dict(load_recommend_recipe(config)))
    data = load_rating_data(recipe.data, file)
    split = leave_last_out(data, recipe.seed)
    _check_k(recipe.k, data.n_items, split, data.n_users, file)
    needs_features = "n_features" in recipe.model_config({}, file).__dataclass_fields__
    features, names = (build_item_features(recipe.features, data.catalogue, file, progress) if needs_features
                       else (None, []))
    fill = {"n_users": len(data.user_ids), "n_items": len(data.catalogue.item_ids)}
    if features is not None:
        fill["n_features"] = features.shape[1]
    torch.manual_seed(recipe.seed)
    cfg = recipe.model_config(fill, file)
    model = build_model(cfg)
    run = RunData(data, split, features, getattr(cfg, "max_len", recipe.data.max_len))
    prepare_model(model, run)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", dump_yaml(saved))
    write_split(run_dir / SPLIT_FILE, data, split)
    write_items_csv(run_dir / ITEMS_FILE, data.catalogue)
    info = {"task": "recommendation", "family": family_of(cfg).name, "model": to_dict(cfg), "loss": loss,
            "k": recipe.k, "history_length": run.history_length, "rating_range": list(data.rating_range),
            "feature_names": names, "select_metric": metric, "seed": recipe.seed,
            "parameters": sum(p.numel() for p in model.parameters()),
            "users": len(data.user_ids), "items": len(data.catalogue.item_ids),
            "interactions": {"train": len(split.train.user), "validation": len(split.validation.user),
                             "test": len(split.test.user)}}
    t0 = time.perf_counter()
    if loss == "fit":
        result = None
        info.update(fit_counts(model, run, recipe.k, progress))
    else:
        result = _train(run_dir, recipe, model, run, loss, metric, info, progress, resume, wrap_objective)
    info["train_wall_s"] = time.perf_counter() - t0
    model = model.cpu().eval()
    write_with(run_dir / "model.safetensors", lambda tmp: save_model(model, str(tmp)))
    write_text(run_dir / RECOMMEND_INFO, json.dumps(info, indent=1))
    test = test_metrics(model, run, loss, recipe.k, progress)
    write_text(run_dir / "eval.json", json.dumps({"test": test}, indent=1))
    if result is not None:
        plot_losses(run_dir / "metrics.jsonl", run_dir / "plots" / "loss.png", title=run_dir.name)
    write_report(run_dir)
    return RecommendResult(run_dir, info, test, result)


def _train(run_dir: Path, recipe: RecommendRecipe, model: torch.nn.Module, run: RunData, loss: str, metric: str,
           info: dict[str, Any], progress: bool, resume: bool, wrap_objective: WrapObjective | None) -> TrainResult:
    objective, train, val, hooks, cfg = training_setup(model, run, loss, recipe)
    if wrap_objective is not None:
        objective = wrap_objective(objective)
    trainer = Trainer(model, objective, train, val, cfg, recipe.optim, run_dir, hooks=hooks,
                      select_metric=f"val_{metric}", progress=progress)
    resumed = latest_checkpoint(trainer.ckpt_dir) if resume else None
    result = trainer.fit(resume=resumed is not None)
    hooks.restore_best()
    info.update({"steps": result.step, "best_step": hooks.best_step, "stopped_early": result.stopped_early,
                 "best_validation": validation_at(run_dir / "metrics.jsonl", hooks.best_step),
                 "device": str(trainer.device),
                 "threads": torch.get_num_threads(), "resumed_from_step": resumed.step if resumed else None})
    shutil.rmtree(trainer.ckpt_dir, ignore_errors=True)  # complete: checkpoints served resuming only
    return result
