"""How one model trains on N processes, and the per-block options that go with it.

    none   one process (or N independent ones: refused)
    ddp    DistributedDataParallel: every rank holds the whole model; gradients are averaged
           (all-reduced, bucketed, overlapped with the backward pass) before each optimizer step
    fsdp   FSDP2 (``torch.distributed.fsdp.fully_shard``; Zhao et al., 2023, https://arxiv.org/abs/2304.11277):
           each Transformer block's parameters, gradients and optimizer state are split into N shards
           (dim 0 of every tensor); a block's full parameters are all-gathered just before its forward and
           backward and freed after, gradients are reduce-scattered. The blocks are sharded one by one,
           then the root (embeddings, final norm, heads), so at most one block is whole at a time.

The Trainer knows no model family: the units FSDP shards and activation checkpointing recomputes are
every :class:`fromzero.nn.Block` found in the model. Activation checkpointing (Chen et al., 2016,
https://arxiv.org/abs/1604.06174) keeps only each block's input and recomputes its activations in the
backward pass: ~1/3 more compute for the memory of one block's activations instead of all of them.
``compile`` runs each block's forward through ``torch.compile`` (the module hooks that DDP and FSDP
use stay outside the compiled code, and parameter names do not change).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from fromzero.errors import ConfigError
from fromzero.nn.block import Block
from fromzero.objectives import Objective, ObjectiveOutput
from fromzero.train.distributed import World
from fromzero.train.train_config import TrainConfig


def resolve_parallel(name: str, w: World) -> str:
    """``auto`` -> ``ddp`` with several processes, else ``none``; ddp / fsdp on one process -> ``none``."""
    if name == "auto":
        return "ddp" if w.distributed else "none"
    if name == "none" and w.distributed:
        raise ConfigError(f"train.parallel: 'none' with {w.world_size} processes would train {w.world_size} "
                          "unrelated models; use ddp or fsdp (or auto), or run one process")
    return name if w.distributed else "none"


def check_world_size(cfg: TrainConfig, world_size: int) -> None:
    """The ``train`` options that must suit the process count, checked before anything is written."""
    resolve_parallel(cfg.parallel, World(world_size=world_size))
    if cfg.batch_size % world_size:
        raise ConfigError(f"train.batch_size: {cfg.batch_size} rows do not split evenly over {world_size} "
                          f"processes; use a multiple of {world_size} (it is the global micro-batch)")


def transformer_blocks(model: nn.Module) -> list[Block]:
    """Every Transformer block of ``model`` (the units of sharding and recomputation)."""
    return [m for m in model.modules() if isinstance(m, Block)]


def check_shardable(model: nn.Module) -> None:
    """FSDP shards a model block by block; a model with no :class:`Block` has nothing to shard by."""
    if not transformer_blocks(model):
        raise ConfigError(f"train.parallel: fsdp shards a model one Transformer block at a time, and this "
                          f"{type(model).__name__} has none (no fromzero.nn.Block); use train.parallel: ddp")


def _checkpointed(forward: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if not torch.is_grad_enabled():  # evaluation, generation: nothing to save for a backward pass
        return forward(*args, **kwargs)
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def patch_blocks(model: nn.Module, *, recompute: bool, compile: bool) -> list[Block]:
    """Route each block's forward through ``torch.compile`` and/or activation checkpointing (an instance
    ``forward``: hooks, names and the state dict are untouched); returns the patched blocks."""
    if not (recompute or compile):
        return []
    blocks = transformer_blocks(model)
    for block in blocks:
        forward = block.forward
        if compile:
            forward = torch.compile(forward)
        if recompute:
            forward = functools.partial(_checkpointed, forward)
        block.forward = forward
    return blocks


def unpatch_blocks(blocks: list[Block]) -> None:
    """Undo :func:`patch_blocks` (after training: generation and export use the plain forward)."""
    for block in blocks:
        block.__dict__.pop("forward", None)


class ObjectiveModule(nn.Module):
    """``objective(model, batch)`` as one module, so DDP sees the whole loss computation inside its forward
    (objectives call heads such as ``model.mlm_logits`` outside the model's own forward)."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self._objective = (objective,)  # a tuple: an objective holding a teacher model is not registered

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ObjectiveOutput]:
        out = self._objective[0](self.model, batch)
        return out.loss, out


def leaves_parameters_unused(model: nn.Module, objective: Objective, batch: dict[str, torch.Tensor]) -> bool:
    """True if one forward and backward of ``objective`` on ``batch`` leaves a trainable parameter without a
    gradient (a pooler no objective reads, a head a fine-tune ignores). Gradients are cleared and the RNG
    is left as it was."""
    device = next(iter(batch.values())).device
    devices = [device.index or 0] if device.type == "cuda" else []
    model.zero_grad(set_to_none=True)
    with torch.random.fork_rng(devices=devices):
        objective(model, batch).loss.backward()
    unused = any(p.grad is None for p in model.parameters() if p.requires_grad)
    model.zero_grad(set_to_none=True)
    return unused


def wrap_ddp(model: nn.Module, objective: Objective, device: torch.device, *, find_unused: bool) -> nn.Module:
    """DDP over :class:`ObjectiveModule`. ``find_unused`` (see :func:`leaves_parameters_unused`) makes DDP
    look for parameters without gradients each step, which it must when there are any."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(ObjectiveModule(model, objective), device_ids=ids,
                                   find_unused_parameters=find_unused)


def shard_fsdp(model: nn.Module, device: torch.device, w: World) -> None:
    """FSDP2 in place: ``fully_shard`` every block, then the root. Parameters become DTensors sharded over
    a 1-D mesh of all ranks; the model stays callable as before (every rank must call it together)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    check_shardable(model)
    mesh = init_device_mesh(device.type, (w.world_size,))
    for block in transformer_blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def reshard(model: nn.Module) -> None:
    """Put FSDP's sharded parameters back after a forward without backward (evaluation): the root keeps
    its whole parameters after its forward, expecting a backward, and they must be sharded again before
    the optimizer steps or a checkpoint reads them. A no-op for a model FSDP did not shard."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()
