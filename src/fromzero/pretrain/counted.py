"""Counted models in a pretraining run: an n-gram model is fitted on the training stream, not trained by steps.

A model with ``fit_counts(tokens)`` (``models/ngram.py``) is counted once on the whole training split; the
run then records what a trained run records at its end: the training loss (over ``eval_batches`` training
batches), the validation metrics from the same batches a GPT is validated on (``Trainer.evaluate``), both at
step 0 of metrics.jsonl, and config.yaml with the table sizes the counts filled in (so the run loads).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from fromzero.atomic import write_text
from fromzero.config import dump_yaml, to_dict
from fromzero.train.distributed import main_first
from fromzero.train.loggers import MetricsLogger, NullLogger
from fromzero.train.trainer import Trainer, TrainResult


def is_counted(model: nn.Module) -> bool:
    """A model fitted by counting (no gradient steps, no parameters)."""
    return hasattr(model, "fit_counts")


@torch.no_grad()
def _train_loss(trainer: Trainer) -> float:
    """Token-weighted mean loss over ``eval_batches`` training batches."""
    total, weight = 0.0, 0
    for i in range(trainer.cfg.eval_batches):
        batch = {k: v.to(trainer.device) for k, v in trainer.train_data.batch(i, 0).items()}
        out = trainer.objective(trainer.model, batch)
        total, weight = total + float(out.loss) * out.weight, weight + out.weight
    return total / max(weight, 1)


def fit_counted(trainer: Trainer, train_tokens: Any, saved: dict[str, Any]) -> TrainResult:
    """``fit_counts`` on the training tokens, then the end-of-run losses into metrics.jsonl (step 0) and the
    filled model config into ``saved`` and config.yaml."""
    t0 = time.time()
    model = trainer.model
    tokens = np.asarray(train_tokens[0:len(train_tokens)], dtype=np.int64)  # the whole stream: n-grams span shards
    model.fit_counts(torch.from_numpy(tokens))
    train_loss = _train_loss(trainer)
    metrics = trainer.evaluate()
    saved["model"] = {"name": saved["model"]["name"], **to_dict(model.config)}  # now with its table sizes
    main_first(lambda: write_text(trainer.run_dir / "config.yaml", dump_yaml(saved)), lambda: None)
    logger = MetricsLogger(trainer.run_dir) if trainer.world.is_main else NullLogger()
    try:
        logger.log({"step": 0, "loss": train_loss, "tokens": len(tokens), "elapsed_s": time.time() - t0})
        if metrics:
            logger.log({"step": 0, **metrics})
    finally:
        logger.close()
    score = metrics.get(trainer.select_metric)
    return TrainResult(step=0, train_loss=train_loss, val_loss=metrics.get("val_loss"), best_metric=score,
                       stopped_early=False, elapsed_s=time.time() - t0, val_metrics=metrics,
                       best_step=0 if score is not None else None)
