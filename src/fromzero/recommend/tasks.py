"""What each recommender loss needs from the run's data: the objective, training and validation batches,
the Trainer's hooks; counting for the families that learn by counting; and the test scores.

    loss          objective         training batches                validation loss batches
    mse           RatingRegression  RatingBatches(train ratings)    RatingBatches(validation ratings)
    bpr           BPR               PairBatches(train ratings)      the validation item vs sampled negatives
    next_item     NextItem          SequenceBatches(next)           the validation item after the history
    masked_item   MaskedItem        SequenceBatches(masked)         a MASK appended after the history
    fit           (none)            model.fit(train ratings)        (none: ranking metrics only)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from fromzero.data.hashing import batch_seed
from fromzero.data.interaction_split import Split, user_histories
from fromzero.data.interactions import RatingData
from fromzero.data.recsys_batches import (
    IGNORE,
    NegativeSampler,
    PairBatches,
    RankingBatches,
    RatingBatches,
    SequenceBatches,
    ranking_inputs,
)
from fromzero.objectives.bpr import BPR
from fromzero.objectives.masked_item import MaskedItem
from fromzero.objectives.next_item import NextItem
from fromzero.objectives.rating_regression import RatingRegression
from fromzero.recommend.hooks import RecommendHooks
from fromzero.recommend.ranking import ranking_metrics, rating_error
from fromzero.recommend.recipe import RecommendRecipe
from fromzero.train.trainer import TrainConfig

RANKING_BATCH = 128  # users scored at once (a (128, I) score matrix)


@dataclass
class RunData:
    """The ratings, their split, the item features (or None) and how many recent items a model reads."""

    data: RatingData
    split: Split
    features: np.ndarray | None
    history_length: int

    @property
    def n_users(self) -> int:
        return len(self.data.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.data.catalogue.item_ids)

    def ranking(self, stage: str) -> RankingBatches:
        """Every user with a ``stage`` (validation | test) item, their history before it, in a fixed order."""
        histories, targets = ranking_inputs(self.split, self.n_users, stage)  # type: ignore[arg-type]
        return RankingBatches(histories, targets, self.n_items, self.history_length, RANKING_BATCH)


@torch.no_grad()
def prepare_model(model: nn.Module, run: RunData) -> None:
    """Fill what a family reads from the data before training: content features, which items training has
    seen (two-tower's cold-start switch), the mean training rating (biased MF)."""
    if hasattr(model, "item_features") and run.features is not None:
        model.item_features.copy_(torch.from_numpy(run.features))
    if hasattr(model, "warm_items"):
        model.warm_items.copy_(torch.from_numpy(np.bincount(run.split.train.item, minlength=run.n_items) > 0))
    if hasattr(model, "set_global_mean"):
        model.set_global_mean(float(run.split.train.rating.mean()))


def fit_counts(model: nn.Module, run: RunData, k: int, progress: bool) -> dict[str, Any]:
    """Count-based families: fit on the training ratings; their validation metrics for recommender.json."""
    train = run.split.train
    model.fit(torch.from_numpy(train.user), torch.from_numpy(train.item), torch.from_numpy(train.rating))
    metrics = ranking_metrics(model, run.ranking("validation"), run.n_items, k, progress)
    metrics.pop("users", None)
    return {"best_validation": {f"val_{name}": value for name, value in metrics.items()}}


def test_metrics(model: nn.Module, run: RunData, loss: str, k: int, progress: bool) -> dict[str, float]:
    """Full-ranking test metrics, also over the users whose test item no training rating touched (``cold_*``),
    and RMSE / MAE of the test ratings for a rating model."""
    cold = torch.from_numpy(np.bincount(run.split.train.item, minlength=run.n_items) == 0)  # (I,)
    metrics = ranking_metrics(model, run.ranking("test"), run.n_items, k, progress, cold_items=cold)
    if loss == "mse":
        metrics.update(rating_error(model, run.split.test, run.data.rating_range))
    return metrics


class HeldOutBatches:
    """Validation-loss batches in the training loss's format, built from each user's validation item."""

    def __init__(self, ranking: RankingBatches, loss: str, n_neg: int, sampler: NegativeSampler | None,
                 seed: int) -> None:
        self.ranking, self.loss, self.n_neg, self.sampler, self.seed = ranking, loss, n_neg, sampler, seed

    def __len__(self) -> int:
        return len(self.ranking)

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        b = self.ranking.batch(step)
        history, target = b["history"], b["target"]  # (B, L), (B,)
        if self.loss == "bpr":
            gen = torch.Generator().manual_seed(batch_seed(self.seed, step, micro) % (2**63))
            return {**b, "item": target, "negative": self.sampler.sample(b["user"], self.n_neg, gen)}
        targets = torch.full_like(history, IGNORE)
        targets[:, -1] = target
        if self.loss == "masked_item":  # the oldest item makes room for a MASK after the history
            mask = torch.full_like(target, self.ranking.n_items + 1)
            history = torch.cat([history[:, 1:], mask[:, None]], dim=1)
        return {"user": b["user"], "history": history, "target": targets}


def training_setup(model: nn.Module, run: RunData, loss: str, recipe: RecommendRecipe
                   ) -> tuple[Any, Any, Any, RecommendHooks, TrainConfig]:
    """(objective, training batches, validation-loss batches, hooks, train config) for a gradient family."""
    cfg, seed, obj = recipe.train, recipe.seed, recipe.objective
    split, n_users, n_items, length = run.split, run.n_users, run.n_items, run.history_length
    common = {"seed": seed, "grad_accum": cfg.grad_accum}
    validation = run.ranking("validation")
    if loss == "mse":
        objective = RatingRegression(obj.reg)
        train = RatingBatches(split.train, cfg.batch_size, **common)
        val: Any = RatingBatches(split.validation, cfg.batch_size, seed=seed)
        n_val = math.ceil(len(split.validation) / cfg.batch_size)
    elif loss == "bpr":
        objective = BPR(obj.reg)
        train = PairBatches(split.train, n_users, n_items, cfg.batch_size, n_neg=obj.negatives, max_len=length,
                            **common)
        val = HeldOutBatches(validation, loss, obj.negatives, NegativeSampler(split.train, n_users, n_items), seed)
        n_val = len(val)
    else:
        objective = NextItem() if loss == "next_item" else MaskedItem()
        mode = "next" if loss == "next_item" else "masked"
        train = SequenceBatches(user_histories(split.train, n_users), n_items, length, cfg.batch_size, mode=mode,
                                mask_prob=obj.mask_prob, window=obj.window, **common)
        val = HeldOutBatches(validation, loss, 0, None, seed)
        n_val = len(val)
    hooks = RecommendHooks(model, validation, n_items, recipe.k, split.validation if loss == "mse" else None,
                           run.data.rating_range)
    return objective, train, val, hooks, replace(cfg, eval_batches=max(1, min(cfg.eval_batches, n_val)))
