"""The training loop: any model + any objective + a deterministic batch source, on one process or N.

One optimizer step s (0-based):
    lr_s = schedule(s)
    g = sum over micro-batches m of grad(loss(s, m) / accum)      gradient accumulation
    g = g * min(1, clip / ||g||)                                  gradient clipping
    theta = optimizer(theta, g, lr_s)

Batches are a pure function of (seed, step, micro), so resuming needs only
the step number (O(1)), never a replay of the data loader. With the RNG
state restored as well, a resumed run on CPU reproduces an uninterrupted
run bit for bit.

Launched as N processes (torchrun, ``--nproc N``), rank r takes rows [r*B/N, (r+1)*B/N) of the same
global batches, the model is replicated (DDP) or sharded (FSDP2) (:mod:`fromzero.train.parallel`), the
step's gradient and loss are those of the global batch (:mod:`fromzero.train.train_step`), and only
rank 0 logs and writes files (:mod:`fromzero.train.dist_checkpoint` for checkpoints). Every rank
evaluates the same validation batches, so every rank takes the same early-stopping decision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from fromzero.data.loader import RankRows
from fromzero.errors import TrainingDivergedError, TrainingStopped
from fromzero.objectives import Objective
from fromzero.progress import Progress, progress
from fromzero.train.checkpoint import latest_checkpoint, remove_stale_temps
from fromzero.train.distributed import any_rank, broadcast_from_main, init_distributed, main_first, rank_device
from fromzero.train.hooks import TrainerHooks
from fromzero.train.loggers import MetricsLogger, NullLogger
from fromzero.train.optim import OptimConfig, build_optimizer, set_lr
from fromzero.train.parallel import (
    check_shardable,
    check_world_size,
    leaves_parameters_unused,
    patch_blocks,
    reshard,
    resolve_parallel,
    shard_fsdp,
    unpatch_blocks,
    wrap_ddp,
)
from fromzero.train.precision import autocast, resolve_device, resolve_precision
from fromzero.train.run_checkpoints import RunCheckpoints, read_state
from fromzero.train.stop_signals import StopSignals
from fromzero.train.train_config import TrainConfig
from fromzero.train.train_step import accumulate, ddp_grad_sync, fsdp_grad_sync, grad_norm, no_grad_sync

__all__ = ["BatchSource", "TrainConfig", "TrainResult", "Trainer", "lower_is_better"]


class BatchSource(Protocol):
    """Deterministic batches: the same (step, micro) always gives the same batch."""

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]: ...


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
LOWER_IS_BETTER = ("loss", "ppl", "mse", "mae", "rmse")


def lower_is_better(metric: str) -> bool:
    """True if a smaller value of ``metric`` (e.g. ``val_loss``, ``val_mse``, ``val_mlm_loss``) is better."""
    name = metric.removeprefix("val_")
    return name in LOWER_IS_BETTER or name.endswith("_loss")


@contextlib.contextmanager
def _buffers_kept(model: nn.Module) -> Iterator[None]:
    """Restore every buffer (BatchNorm running statistics) after the block."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _count_tokens(batch: dict[str, torch.Tensor]) -> int | None:
    return int(batch["input_ids"].numel()) if "input_ids" in batch else None


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class Trainer:
    """Runs optimisation, evaluation, logging and checkpointing into ``run_dir``."""

    def __init__(self, model: nn.Module, objective: Objective, train_data: BatchSource,
                 val_data: BatchSource | None, cfg: TrainConfig, optim: OptimConfig, run_dir: str | Path,
                 *, hooks: TrainerHooks | None = None, select_metric: str = "val_loss", progress: bool = True) -> None:
        """``select_metric`` (minimised if :func:`lower_is_better`, else maximised) drives early stopping and
        ``hooks.on_best``; ``hooks`` (:class:`~fromzero.train.hooks.TrainerHooks`) adds evaluation metrics
        and decides what checkpoints hold. Under torchrun every rank builds the same Trainer."""
        self.cfg, self.optim_cfg, self.run_dir = cfg, optim, Path(run_dir)
        device = resolve_device(cfg.device)
        self.world = w = init_distributed(device)
        self.device = rank_device(device, w)
        check_world_size(cfg, w.world_size)
        self.parallel = resolve_parallel(cfg.parallel, w)
        if self.parallel == "fsdp":
            check_shardable(model)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.model = model.to(self.device)
        self.objective, self.val_data = objective, val_data
        self.train_data = RankRows(train_data, cfg.batch_size, w.rank, w.world_size) if w.distributed else train_data
        # "auto" on the CPU is decided in fit() by timing the first training step (see _setup)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.progress, self.hooks, self.select_metric = progress, hooks or TrainerHooks(), select_metric
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.checkpoints = RunCheckpoints(self.ckpt_dir, cfg, self.hooks, w, self.parallel, self.model)
        self.optimizer: torch.optim.Optimizer | None = None  # built in fit(), after sharding
        self._forward, self._sync = (lambda batch: objective(self.model, batch)), no_grad_sync
        self._first: tuple[int, dict[str, torch.Tensor]] | None = None  # (step, micro-batch 0), fetched once
        self.state: dict[str, Any] = {"best_metric": None, "bad_evals": 0, "tokens": 0, "best_step": None}

    def _setup(self, start: int, recorded: str | None = None) -> None:
        """Before the first step: the precision probe and DDP's unused-parameter check (on the plain model,
        with the first batch this run trains on, which the step then reuses), sharding, the optimizer.
        ``recorded``: the precision the checkpoint being resumed trained in; ``auto`` keeps it instead of
        probing again (a probe near a tie could answer differently and change the trajectory)."""
        if self.optimizer is not None:
            return
        w, objective = self.world, self.objective
        first = _to_device(self.train_data.batch(start, 0), self.device)
        self._first = (start, first)
        with _buffers_kept(self.model):  # a probe step must not move BatchNorm statistics
            if self.cfg.precision == "auto" and self.device.type == "cpu":
                self.precision = recorded or broadcast_from_main(self._probe_precision(first) if w.is_main
                                                                 else None)
            unused = self.parallel == "ddp" and any_rank(leaves_parameters_unused(self.model, objective, first))
        self.state["precision"] = self.precision
        if self.parallel == "fsdp":
            shard_fsdp(self.model, self.device, w)  # before the optimizer: it must hold the sharded parameters
            self._sync = fsdp_grad_sync(self.model)
        self.optimizer = build_optimizer(self.model, self.optim_cfg)
        if self.parallel == "ddp":
            ddp = wrap_ddp(self.model, objective, self.device, find_unused=unused)
            self._forward, self._sync = (lambda batch: ddp(batch)[1]), ddp_grad_sync(ddp)
        if w.rank > 0:  # every rank built the same model; from here on, dropout draws differ per rank
            torch.manual_seed(torch.initial_seed() + w.rank)

    def _probe_precision(self, batch: dict[str, torch.Tensor]) -> str:
        """``precision: auto`` on the CPU: the faster of fp32 and bf16 for one step of this model on this
        batch (:func:`~fromzero.train.precision_probe.probe_precision`, ~2 s at most)."""
        from fromzero.train.precision_probe import probe_precision

        shapes = tuple((k, tuple(v.shape)) for k, v in sorted(batch.items()))
        key = (type(self.model).__qualname__, sum(p.numel() for p in self.model.parameters()), shapes)

        def step() -> None:
            self.objective(self.model, batch).loss.backward()

        def probe() -> str:
            try:
                return probe_precision(step, self.device, key=key, tokens_per_step=_count_tokens(batch)).fastest
            finally:
                self.model.zero_grad(set_to_none=True)

        return resolve_precision(self.cfg.precision, self.device, probe=probe)

    def _batch(self, step: int, micro: int) -> dict[str, torch.Tensor]:
        if self._first is not None and self._first[0] == step and micro == 0:
            batch, self._first = self._first[1], None
            return batch
        return _to_device(self.train_data.batch(step, micro), self.device)

    def export_model(self) -> nn.Module | None:
        """The trained model as one plain module (all ranks call it together); under FSDP rank 0 gets the
        weights gathered into a copy of the model and the other ranks None."""
        return self.checkpoints.whole_model(self.model)

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
        if self.parallel == "fsdp":
            reshard(self.model)
        self.model.train(was_training)
        return means

    # -- one optimizer step ---------------------------------------------------------------------
    def _train_step(self, step: int) -> tuple[float, float, int, float]:
        lr = set_lr(self.optimizer, step, self.optim_cfg, self.cfg.max_steps)
        loss, tokens = accumulate(self._forward, lambda micro: self._batch(step, micro), self.cfg.grad_accum,
                                  self.precision, self.device, world_size=self.world.world_size, sync=self._sync)
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"loss became {loss} at step {step + 1}; stopped without saving. "
                                        f"{self._last_good()}")
        norm = grad_norm(self.model, self.cfg.grad_clip)
        if not math.isfinite(norm):
            raise TrainingDivergedError(f"gradient norm became {norm} at step {step + 1}; stopped without "
                                        f"applying it. {self._last_good()}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, lr, tokens, norm

    def _last_good(self) -> str:
        ckpt = latest_checkpoint(self.ckpt_dir)
        fix = "lower optim.lr or raise optim.warmup_steps"
        if ckpt is None:
            return f"No checkpoint was written yet: {fix} and start again"
        return f"The last good checkpoint ({ckpt.path}) is intact: {fix}, then --resume"

    # -- the loop --------------------------------------------------------------------------------
    def _resume(self) -> int:
        ckpt, payload = self.checkpoints.load_latest(self.model, self.optimizer)
        trainer_state = dict(payload["trainer"])
        if "best_val_loss" in trainer_state:  # checkpoints written before the key was renamed
            trainer_state["best_metric"] = trainer_state.pop("best_val_loss")
        self.state.update(trainer_state)
        return ckpt.step

    def _checkpoint(self, step: int) -> None:
        state = {"trainer": dict(self.state), "data": {"next_step": step}}
        self.checkpoints.save(step, self.model, self.optimizer, state, self.run_dir / "metrics.jsonl")

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

        SIGTERM or SIGUSR1 stops at the next step boundary with a checkpoint (:class:`TrainingStopped`);
        with several processes, a signal to any rank stops every rank at the same step."""
        cfg, main = self.cfg, self.world.is_main

        def prepare() -> None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.ckpt_dir)

        main_first(prepare, lambda: None)
        latest = latest_checkpoint(self.ckpt_dir) if resume else None
        recorded = read_state(latest)["trainer"].get("precision") if latest is not None else None
        self._setup(latest.step if latest is not None else 0, recorded)
        start = self._resume() if resume else 0
        loop = _LoopState(done=start)
        logger = MetricsLogger(self.run_dir, resume_step=start if resume else None) if main else NullLogger()
        self.model.train()
        bar = progress(total=cfg.max_steps, initial=start, desc="train", unit="step", enabled=self.progress and main)
        patched = patch_blocks(self.model, recompute=cfg.activation_checkpointing, compile=cfg.compile)
        try:
            with StopSignals() as signals:
                for step in range(start, cfg.max_steps):
                    self._run_step(step, loop, logger, bar)
                    stop = any_rank(signals.received is not None) if self.world.distributed \
                        else signals.received is not None
                    due = (cfg.ckpt_every and loop.done % cfg.ckpt_every == 0) or loop.done == cfg.max_steps
                    if due or loop.stopped_early or stop:
                        self._checkpoint(loop.done)
                    if stop:
                        name, code = (signals.name, 128 + signals.received) if signals.received else ("a stop "
                                                                                                       "signal", 143)
                        raise TrainingStopped(f"stopped by {name} at step {loop.done}; checkpoint written to "
                                              f"{self.ckpt_dir}; resume with --resume", code)
                    if loop.stopped_early:
                        break
        finally:
            unpatch_blocks(patched)
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
