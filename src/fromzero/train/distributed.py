"""Processes, ranks and the process group: the one place that talks to ``torch.distributed`` directly.

torchrun (or ``fromzero pretrain|finetune RECIPE --nproc N``, which runs torchrun's own launcher, see
:mod:`fromzero.train.launch`) starts one process per rank and tells each who it is through the
environment: ``RANK`` (0..N-1 over all nodes), ``WORLD_SIZE`` (N), ``LOCAL_RANK`` (index on this
node), ``MASTER_ADDR``/``MASTER_PORT`` (the rendezvous). :func:`world` reads them, so a run knows its
rank before any process group exists; :func:`init_distributed` joins the group (gloo on CPU, NCCL on
CUDA). With one process nothing here does any communication, so a single-process run is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from fromzero.errors import FromZeroError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """Who this process is among the ranks of one run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0: the only rank that logs and writes run-directory files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world() -> World:
    """This process's rank, world size and local rank (torchrun's environment; one process without it)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                 int(os.environ.get("LOCAL_RANK", "0")))


def rank_device(device: torch.device, w: World | None = None) -> torch.device:
    """The device of this rank: ``cuda`` without an index becomes ``cuda:LOCAL_RANK`` (one GPU per process)."""
    w = w or world()
    if device.type == "cuda" and device.index is None and w.distributed:
        return torch.device("cuda", w.local_rank)
    return device


def init_distributed(device: torch.device) -> World:
    """Join the process group of a multi-process run (idempotent; no-op for one process)."""
    w = world()
    if w.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(rank_device(device, w))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world()


def shutdown() -> None:
    """Leave the process group (end of a run); a no-op when none was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    if _active():
        dist.barrier()


def _comm_device() -> torch.device:
    """Where collectives' tensors live: NCCL needs the rank's GPU, gloo the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all ranks, in float64 (the values themselves for one process)."""
    if not _active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool) -> bool:
    """True if ``flag`` is true on any rank: every rank then takes the same branch (e.g. a stop signal)."""
    return all_reduce_sum([1.0 if flag else 0.0])[0] > 0


def broadcast_from_main(value: T) -> T:
    """Rank 0's ``value`` (a picklable object) on every rank."""
    if not _active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]


def gather_to_main(value: Any) -> list[Any] | None:
    """Every rank's ``value`` (picklable), in rank order, on rank 0; None on the other ranks."""
    if not _active():
        return [value]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(value, out, dst=0)
    return out


def main_first(fn: Callable[[], T], then: Callable[[], T] | None = None) -> T:
    """Run ``fn`` on rank 0, then (after a barrier) ``then`` (default ``fn``) on the other ranks: rank 0
    writes a shared file once, the others read what it wrote. An error on rank 0 reaches every rank."""
    w = world()
    if not _active():
        return fn()
    error: BaseException | None = None
    result: Any = None
    if w.is_main:
        try:
            result = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised below, after the others are told
            error = err
    # a user error (one line) reaches the other ranks as itself; anything else as RankZeroFailed
    failed = broadcast_from_main(None if error is None else
                                 error if isinstance(error, FromZeroError) else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if isinstance(failed, BaseException):
        raise failed
    if failed is not None:
        raise RankZeroFailed(f"rank 0 failed: {failed}")
    return result if w.is_main else (then or fn)()


# what gloo and NCCL say when the process at the other end of a collective is gone
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "remote worker crashing", "Broken pipe",
              "NCCL communicator was aborted", "ProcessGroupNCCL's watchdog", "Socket Timeout")


def is_peer_failure(err: BaseException) -> bool:
    """True if ``err`` is a collective failing because another rank died (not a failure of this rank)."""
    return isinstance(err, dist.DistError) or (isinstance(err, RuntimeError)
                                               and any(text in str(err) for text in _PEER_GONE))


class RankZeroFailed(RuntimeError):
    """Raised on the other ranks when rank 0 failed in :func:`main_first` with an unexpected error."""
