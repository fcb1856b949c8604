"""A Trainer's checkpoints, whatever the process count, parallel mode and format.

    one process              train/checkpoint.py as always
    DDP, consolidated        rank 0 writes its replica (every replica is the same) and every rank's RNG
    FSDP, consolidated       every rank helps gather the full state onto rank 0's CPU, rank 0 writes it
                             in the one-process layout (so one process, or any N, resumes it)
    any, sharded             torch.distributed.checkpoint: every rank writes its own shard

Whatever rank 0 fails with while writing (a full disk) is raised on every rank, so all stop together;
the checkpoint folder appears only complete (see :mod:`fromzero.train.dist_checkpoint`).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fromzero.errors import CheckpointError, ConfigError, DiskFullError
from fromzero.train.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from fromzero.train.dist_checkpoint import (
    full_model_state,
    full_optimizer_state,
    gather_rng,
    is_sharded,
    load_full_state,
    load_sharded,
    materialize,
    meta_copy,
    save_sharded,
)
from fromzero.train.distributed import World, main_first
from fromzero.train.hooks import TrainerHooks
from fromzero.train.loggers import plot_losses
from fromzero.train.train_config import TrainConfig


def _whole(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every DTensor (an FSDP shard) all-gathered whole; plain tensors as they are. All ranks call."""
    from torch.distributed.tensor import DTensor

    return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in tensors.items()}


def _release(skeleton: nn.Module) -> None:
    """Back to meta parameters, so rank 0 does not keep a whole copy of the model between checkpoints."""
    metas: dict[int, nn.Parameter] = {}
    for module in skeleton.modules():
        for name, p in module._parameters.items():
            if p is not None:
                metas.setdefault(id(p), nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad))
                module._parameters[name] = metas[id(p)]


class RunCheckpoints:
    """Saves and loads the checkpoints in ``ckpt_dir`` for one Trainer (create it before FSDP shards ``model``)."""

    def __init__(self, ckpt_dir: Path, cfg: TrainConfig, hooks: TrainerHooks, w: World, parallel: str,
                 model: nn.Module) -> None:
        self.ckpt_dir, self.hooks, self.world, self.parallel = ckpt_dir, hooks, w, parallel
        self.keep_last, self.sharded = cfg.keep_last, cfg.checkpoint_format == "sharded"
        self.skeleton = meta_copy(model) if parallel == "fsdp" else None  # the whole model's shape, no memory
        custom_extras = type(hooks).checkpoint_extras is not TrainerHooks.checkpoint_extras
        if self.sharded and (hooks.owns_weights or custom_extras):
            raise ConfigError("train.checkpoint_format: sharded checkpoints hold the whole model and optimizer; "
                              "this run checkpoints its own tensors (a fine-tune's trainable ones): use consolidated")

    # -- saving ---------------------------------------------------------------------------------------
    def save(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
             metrics: Path) -> None:
        """Write checkpoint ``step`` (all ranks call); rank 0 also redraws the loss plot."""
        try:
            if self.sharded:
                save_sharded(self.ckpt_dir, step, model, optimizer, state, self.keep_last, self.world)
            else:
                self._save_consolidated(step, model, optimizer, state)
            if self.world.is_main:
                plot_losses(metrics, metrics.parent / "plots" / "loss.png")
        except DiskFullError:
            last = latest_checkpoint(self.ckpt_dir)
            intact = (f"the last complete checkpoint (step {last.step}) is intact: free some space, then --resume"
                      if last else "no earlier checkpoint exists: free some space and start again")
            raise DiskFullError(f"{self.ckpt_dir}: the disk is full; checkpoint step {step} was not written "
                                f"(nothing half-written is left); {intact}") from None

    def _save_consolidated(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                           state: dict[str, Any]) -> None:
        hooks = self.hooks
        weights = hooks.checkpoint_weights() if hooks.owns_weights else None
        extras = hooks.checkpoint_extras()
        if not self.world.distributed:
            save_checkpoint(self.ckpt_dir, step, model, optimizer, state, keep_last=self.keep_last,
                            weights=weights, extras=extras)
            return
        target, opt_state = model, optimizer
        if self.parallel == "fsdp":  # gather onto rank 0, shard by shard
            full = full_model_state(model) if weights is None else {}
            opt_state = full_optimizer_state(model, optimizer)
            weights = _whole(weights) if weights is not None else None
            extras = {name: _whole(tensors) for name, tensors in extras.items()}
            if self.world.is_main and weights is None:
                target = materialize(self.skeleton, full)
        rng = gather_rng(self.world)

        def write() -> None:
            try:
                save_checkpoint(self.ckpt_dir, step, target, opt_state, state, keep_last=self.keep_last,
                                weights=weights, extras=extras, rng=rng)
            finally:
                if self.skeleton is not None:
                    _release(self.skeleton)

        main_first(write, lambda: None)

    def whole_model(self, model: nn.Module) -> nn.Module | None:
        """``model`` itself, or under FSDP (all ranks call) its gathered copy on rank 0 and None elsewhere."""
        if self.parallel != "fsdp":
            return model
        full = full_model_state(model)
        return materialize(self.skeleton, full) if self.world.is_main else None

    # -- loading --------------------------------------------------------------------------------------
    def load_latest(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Checkpoint, dict[str, Any]]:
        """Restore the latest checkpoint into ``model``, ``optimizer``, this rank's RNG and the hooks."""
        ckpt = latest_checkpoint(self.ckpt_dir)
        if ckpt is None:
            raise CheckpointError(f"no checkpoint in {self.ckpt_dir}; run without --resume to start fresh")
        owns = self.hooks.owns_weights
        if is_sharded(ckpt):
            if owns:
                raise CheckpointError(f"{ckpt.path}: a sharded checkpoint, but this run restores its own tensors; "
                                      "resume it with the run that wrote it")
            payload = load_sharded(ckpt, model, optimizer, self.world)
        elif self.parallel == "fsdp":
            payload = read_state(ckpt)
            try:
                tensors = load_full_state(model, optimizer, self.skeleton, ckpt, payload, load_model=not owns)
            except (OSError, ValueError) as err:
                raise CheckpointError(f"{ckpt.path}: unreadable checkpoint ({err}); resume from an older one "
                                      "by deleting this folder") from None
            restore_rng_states(tensors, self.world.rank)
        else:
            payload = load_checkpoint(ckpt, None if owns else model, optimizer, rank=self.world.rank)
        with _plain_tensors_as_replicated() if self.parallel == "fsdp" else contextlib.nullcontext():
            self.hooks.restore(ckpt, payload)  # copies whole saved tensors into (sharded) parameters
        return ckpt, payload


def read_state(ckpt: Checkpoint) -> dict[str, Any]:
    """The checkpoint's state.json payload (trainer state, data position), without touching its tensors."""
    try:
        return json.loads((ckpt.path / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{ckpt.path}: unreadable checkpoint ({err}); resume from an older one by deleting "
                              "this folder") from None


def _plain_tensors_as_replicated() -> contextlib.AbstractContextManager:
    """Inside, a plain tensor meeting a DTensor counts as replicated on every rank: copying a whole saved
    tensor into a sharded parameter keeps this rank's shard of it."""
    from torch.distributed.tensor.experimental import implicit_replication

    return implicit_replication()
