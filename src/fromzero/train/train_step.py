"""The gradient of one optimizer step, on one process or N.

One process, micro-batches m = 0..A-1 (gradient accumulation):
    g = sum_m grad(L_m / A)                  L_m: the objective's loss, a mean over the w_m items it scored

N ranks, rank r holding rows [r*B/N, (r+1)*B/N) of each micro-batch, scoring w_{r,m} items:
    W_m = sum_r w_{r,m}                      one all-reduce per micro-batch, before the backward pass
    rank r backpropagates L_{r,m} * (N * w_{r,m} / W_m) / A
DDP and FSDP average gradients over the N ranks, so the step's gradient is
    sum_m grad(sum_r L_{r,m} w_{r,m} / W_m) / A = sum_m grad(L_m) / A,
the single-process gradient (exactly so when L is a mean over the w items the objective reports, as
every token- or row-mean loss is; rounding differs, since the sums run in another order). Gradients are
synchronised only on the last micro-batch (DDP ``no_sync``, FSDP2 ``set_requires_gradient_sync``).
The reported loss is the global mean, sum_{r,m} L_{r,m} w_{r,m} / W_m / A, the same on every rank.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from fromzero.objectives import ObjectiveOutput
from fromzero.train.distributed import all_reduce_sum
from fromzero.train.precision import autocast

Forward = Callable[[dict[str, torch.Tensor]], ObjectiveOutput]
#: ``sync(last)``: a context in which the backward pass does (``last``) or does not all-reduce gradients
GradSync = Callable[[bool], contextlib.AbstractContextManager]


def no_grad_sync(last: bool) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def ddp_grad_sync(ddp: nn.Module) -> GradSync:
    return lambda last: contextlib.nullcontext() if last else ddp.no_sync()


def fsdp_grad_sync(model: nn.Module) -> GradSync:
    @contextlib.contextmanager
    def sync(last: bool):
        model.set_requires_gradient_sync(last)
        yield

    return sync


def _count(batch: dict[str, torch.Tensor], out: ObjectiveOutput) -> int:
    return int(batch["input_ids"].numel()) if "input_ids" in batch else out.weight


def accumulate(forward: Forward, batches: Callable[[int], dict[str, torch.Tensor]], accum: int,
               precision: str, device: torch.device, *, world_size: int = 1,
               sync: GradSync = no_grad_sync) -> tuple[float, int]:
    """Forward and backward over ``accum`` micro-batches (``batches(micro)``); returns the step's mean
    loss over all ranks and the tokens (or items) of the global batch."""
    if world_size == 1:  # the single-process path, unchanged
        loss_sum, tokens = torch.zeros((), device=device), 0
        for micro in range(accum):
            batch = batches(micro)
            with autocast(precision, device):
                out = forward(batch)
            (out.loss / accum).backward()
            loss_sum += out.loss.detach().float()
            tokens += _count(batch, out)
        return float(loss_sum) / accum, tokens
    loss_sum, tokens = 0.0, 0
    for micro in range(accum):
        batch = batches(micro)
        with sync(micro == accum - 1):
            with autocast(precision, device):
                out = forward(batch)
            w = float(out.weight)
            total = all_reduce_sum([w])[0]
            share = w / total if total > 0 else 0.0
            loss = out.loss if w > 0 else torch.nan_to_num(out.loss)  # an empty share adds nothing
            (loss * (share * world_size / accum)).backward()
        loss_sum += float(out.loss.detach().float()) * share if w > 0 else 0.0
        tokens += _count(batch, out)
    loss_sum, tokens_sum = all_reduce_sum([loss_sum, float(tokens)])
    return loss_sum / accum, int(tokens_sum)


def grad_norm(model: nn.Module, clip: float) -> float:
    """The global gradient norm ||g|| (over all ranks' shards under FSDP), clipping g to ``clip`` if > 0."""
    params = [p for p in model.parameters() if p.grad is not None]
    if clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
    elif any(_is_dtensor(p.grad) for p in params):
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    else:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    if _is_dtensor(norm):  # FSDP: a replicated DTensor holding the norm over every shard
        norm = norm.full_tensor()
    return float(norm)


def _is_dtensor(t: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)
