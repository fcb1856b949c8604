"""The training loop: any model + any objective + a deterministic batch source.

One optimizer step s (0-based):
    lr_s = schedule(s)
    g = sum over micro-batches m of grad(loss(s, m) / accum)      gradient accumulation
    g = g * min(1, clip / ||g||)                                  gradient clipping
    theta = optimizer(theta, g, lr_s)

Batches are a pure function of (seed, step, micro), so resuming needs only
the step number (O(1)), never a replay of the data loader. With the RNG
state restored as well, a resumed run on CPU reproduces an uninterrupted
run bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.errors import CheckpointError, DiskFullError, TrainingDivergedError, TrainingStopped
from fromzero.objectives import Objective
from fromzero.progress import Progress, progress
from fromzero.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temps,
    save_checkpoint,
)
from fromzero.train.hooks import TrainerHooks
from fromzero.train.loggers import MetricsLogger, plot_losses
from fromzero.train.optim import OptimConfig, build_optimizer, set_lr
from fromzero.train.precision import autocast, resolve_device, resolve_precision
from fromzero.train.stop_signals import StopSignals


class BatchSource(Protocol):
    """Deterministic batches: the same (step, micro) always gives the same batch."""

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train; how often to evaluate, log and checkpoint."""

    max_steps: int = field(1000, help="optimizer steps")
    batch_size: int = field(16, help="sequences per micro-batch")
    seq_len: int | None = field(None, help="tokens per sequence (null = the model's block_size)")
    grad_accum: int = field(1, help="micro-batches per optimizer step")
    grad_clip: float = field(1.0, help="max global gradient norm (0 disables clipping)")
    precision: Literal["auto", "fp32", "bf16"] = field("auto", help="bf16 autocast on supporting GPUs")
    device: str = field("auto", help="'auto', 'cpu', 'cuda', 'cuda:1', 'mps'")
    threads: int | None = field(None, help="CPU threads for torch (null = torch's default)")
    log_every: int = field(10, help="steps between train-loss log records")
    eval_every: int = field(100, help="steps between validation evaluations (0 = only at the end)")
    eval_batches: int = field(20, help="validation batches per evaluation")
    ckpt_every: int = field(200, help="steps between checkpoints (0 = only at the end)")
    keep_last: int = field(3, help="checkpoints to keep (0 = all)")
    early_stop_patience: int = field(0, help="stop after this many evaluations without improvement (0 = off)")
    early_stop_min_delta: float = field(0.0, help="improvement in val loss that resets patience")

    def __post_init__(self) -> None:
        for key in ("max_steps", "batch_size", "grad_accum", "log_every", "eval_batches"):
            require(getattr(self, key) > 0, key, f"must be positive, got {getattr(self, key)}")
        for key in ("eval_every", "ckpt_every", "keep_last", "early_stop_patience"):
            require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        require(self.seq_len is None or self.seq_len > 0, "seq_len", "must be positive")
        require(self.grad_clip >= 0, "grad_clip", "must be >= 0")
        require(self.threads is None or self.threads > 0, "threads", "must be positive")


@dataclass
class TrainResult:
    step: int
    train_loss: float
    val_loss: float | None
    best_metric: float | None  # best value of the selection metric (``select_metric``) over evaluations
    stopped_early: bool
    elapsed_s: float
    val_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    best_step: int | None = None  # step of the best evaluation by the selection metric


# Validation metrics where lower is better (after the "val_" prefix); every other metric is maximised.
LOWER_IS_BETTER = ("loss", "ppl", "mse", "mae")


def lower_is_better(metric: str) -> bool:
    """True if a smaller value of ``metric`` (e.g. ``val_loss``, ``val_mse``, ``val_mlm_loss``) is better."""
    name = metric.removeprefix("val_")
    return name in LOWER_IS_BETTER or name.endswith("_loss")


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class Trainer:
    """Runs optimisation, evaluation, logging and checkpointing into ``run_dir``."""

    def __init__(self, model: nn.Module, objective: Objective, train_data: BatchSource,
                 val_data: BatchSource | None, cfg: TrainConfig, optim: OptimConfig, run_dir: str | Path,
                 *, hooks: TrainerHooks | None = None, select_metric: str = "val_loss", progress: bool = True) -> None:
        """``select_metric`` (minimised if :func:`lower_is_better`, else maximised) drives early stopping and
        ``hooks.on_best``; ``hooks`` (:class:`~fromzero.train.hooks.TrainerHooks`) adds evaluation metrics
        and decides what checkpoints hold."""
        self.cfg, self.optim_cfg, self.run_dir = cfg, optim, Path(run_dir)
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.model = model.to(self.device)
        self.objective, self.train_data, self.val_data = objective, train_data, val_data
        self.optimizer = build_optimizer(self.model, optim)
        self.progress, self.hooks, self.select_metric = progress, hooks or TrainerHooks(), select_metric
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.state: dict[str, Any] = {"best_metric": None, "bad_evals": 0, "tokens": 0, "best_step": None}

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean validation metrics over ``eval_batches`` fixed batches (weighted by scored items)."""
        if self.val_data is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        totals: dict[str, float] = {}
        weight = 0
        for i in range(self.cfg.eval_batches):
            batch = _to_device(self.val_data.batch(i, 0), self.device)
            with autocast(self.precision, self.device):
                out = self.objective(self.model, batch)
            for k, v in out.metrics.items():
                totals[k] = totals.get(k, 0.0) + float(v) * out.weight
            weight += out.weight
        means = {f"val_{k}": v / max(weight, 1) for k, v in totals.items()}
        if "val_loss" in means:
            means["val_ppl"] = math.exp(min(means["val_loss"], 50.0))
        means.update({f"val_{k}": float(v) for k, v in self.hooks.extra_metrics(self.model).items()})
        self.model.train(was_training)
        return means

    # -- one optimizer step ---------------------------------------------------------------------
    def _train_step(self, step: int) -> tuple[float, float, int, float]:
        lr = set_lr(self.optimizer, step, self.optim_cfg, self.cfg.max_steps)
        loss_sum, tokens = torch.zeros((), device=self.device), 0
        for micro in range(self.cfg.grad_accum):
            batch = _to_device(self.train_data.batch(step, micro), self.device)
            with autocast(self.precision, self.device):
                out = self.objective(self.model, batch)
            (out.loss / self.cfg.grad_accum).backward()
            loss_sum += out.loss.detach().float()
            tokens += int(batch["input_ids"].numel()) if "input_ids" in batch else out.weight
        loss = float(loss_sum) / self.cfg.grad_accum
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"loss became {loss} at step {step + 1}; stopped without saving. "
                                        f"{self._last_good()}")
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.cfg.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
        if not math.isfinite(grad_norm):
            raise TrainingDivergedError(f"gradient norm became {grad_norm} at step {step + 1}; stopped without "
                                        f"applying it. {self._last_good()}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, lr, tokens, grad_norm

    def _last_good(self) -> str:
        ckpt = latest_checkpoint(self.ckpt_dir)
        fix = "lower optim.lr or raise optim.warmup_steps"
        if ckpt is None:
            return f"No checkpoint was written yet: {fix} and start again"
        return f"The last good checkpoint ({ckpt.path}) is intact: {fix}, then --resume"

    # -- the loop --------------------------------------------------------------------------------
    def _resume(self) -> int:
        ckpt = latest_checkpoint(self.ckpt_dir)
        if ckpt is None:
            raise CheckpointError(f"no checkpoint in {self.ckpt_dir}; run without --resume to start fresh")
        payload = load_checkpoint(ckpt, None if self.hooks.owns_weights else self.model, self.optimizer)
        trainer_state = dict(payload["trainer"])
        if "best_val_loss" in trainer_state:  # checkpoints written before the key was renamed
            trainer_state["best_metric"] = trainer_state.pop("best_val_loss")
        self.state.update(trainer_state)
        self.hooks.restore(ckpt, payload)
        return ckpt.step

    def _checkpoint(self, step: int) -> None:
        state = {"trainer": dict(self.state), "data": {"next_step": step}}
        hooks = self.hooks
        try:
            save_checkpoint(self.ckpt_dir, step, self.model, self.optimizer, state, keep_last=self.cfg.keep_last,
                            weights=hooks.checkpoint_weights() if hooks.owns_weights else None,
                            extras=hooks.checkpoint_extras())
            plot_losses(self.run_dir / "metrics.jsonl", self.run_dir / "plots" / "loss.png")
        except DiskFullError:
            last = latest_checkpoint(self.ckpt_dir)
            intact = (f"the last complete checkpoint (step {last.step}) is intact: free some space, then --resume"
                      if last else "no earlier checkpoint exists: free some space and start again")
            raise DiskFullError(f"{self.ckpt_dir}: the disk is full; checkpoint step {step} was not written "
                                f"(nothing half-written is left); {intact}") from None

    def _improved(self, value: float, step: int) -> bool:
        best, delta = self.state["best_metric"], self.cfg.early_stop_min_delta
        minimise = lower_is_better(self.select_metric)
        better = best is None or (value < best - delta if minimise else value > best + delta)
        if better:
            self.state["best_metric"], self.state["bad_evals"], self.state["best_step"] = value, 0, step
            return True
        self.state["bad_evals"] += 1
        return False

    def fit(self, resume: bool = False) -> TrainResult:
        """Train to ``max_steps`` (or early stop); with ``resume``, continue the latest checkpoint.

        SIGTERM or SIGUSR1 stops at the next step boundary with a checkpoint (:class:`TrainingStopped`)."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.ckpt_dir)
        start = self._resume() if resume else 0
        loop = _LoopState(done=start)
        logger = MetricsLogger(self.run_dir, resume_step=start if resume else None)
        self.model.train()
        bar = progress(total=cfg.max_steps, initial=start, desc="train", unit="step", enabled=self.progress)
        try:
            with StopSignals() as signals:
                for step in range(start, cfg.max_steps):
                    self._run_step(step, loop, logger, bar)
                    due = (cfg.ckpt_every and loop.done % cfg.ckpt_every == 0) or loop.done == cfg.max_steps
                    if due or loop.stopped_early or signals.received is not None:
                        self._checkpoint(loop.done)
                    if signals.received is not None:
                        raise TrainingStopped(f"stopped by {signals.name} at step {loop.done}; checkpoint written to "
                                              f"{self.ckpt_dir}; resume with --resume", 128 + signals.received)
                    if loop.stopped_early:
                        break
        finally:
            bar.close()
            logger.close()
        return TrainResult(step=loop.done, train_loss=loop.loss, val_loss=loop.val_loss,
                           best_metric=self.state["best_metric"], stopped_early=loop.stopped_early,
                           elapsed_s=time.time() - loop.t0, val_metrics=loop.metrics,
                           best_step=self.state.get("best_step"))

    def _run_step(self, step: int, loop: _LoopState, logger: MetricsLogger, bar: Progress) -> None:
        """One optimizer step, then its log record and (when due) an evaluation; updates ``loop``."""
        cfg = self.cfg
        t_step = time.perf_counter()
        loop.loss, lr, tokens, grad_norm = self._train_step(step)
        loop.window_t += time.perf_counter() - t_step
        loop.window_tokens += tokens
        self.state["tokens"] += tokens
        loop.done = done = step + 1
        if done % cfg.log_every == 0 or done == cfg.max_steps:
            tps = loop.window_tokens / max(loop.window_t, 1e-9)
            logger.log({"step": done, "loss": loop.loss, "lr": lr, "grad_norm": grad_norm,
                        "tokens": self.state["tokens"], "tokens_per_s": tps, "elapsed_s": time.time() - loop.t0})
            bar.set_postfix(loss=f"{loop.loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}")
            loop.window_tokens, loop.window_t = 0, 0.0
        eval_due = (cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.max_steps
        if eval_due and self.val_data is not None:
            loop.metrics = self.evaluate()
            loop.val_loss, score = loop.metrics.get("val_loss"), loop.metrics.get(self.select_metric)
            logger.log({"step": done, **loop.metrics})
            if score is not None and self._improved(score, done):
                self.hooks.on_best(done, loop.metrics)
            elif score is not None and cfg.early_stop_patience and self.state["bad_evals"] >= cfg.early_stop_patience:
                loop.stopped_early = True
        bar.update(1)


@dataclass
class _LoopState:
    """What the training loop carries from step to step."""

    done: int
    loss: float = float("nan")
    val_loss: float | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    stopped_early: bool = False
    window_tokens: int = 0
    window_t: float = 0.0
    t0: float = dataclasses.field(default_factory=time.time)
