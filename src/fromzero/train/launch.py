"""``fromzero pretrain|finetune RECIPE --nproc N``: N local processes through torchrun's own launcher.

The command re-runs itself, without ``--nproc``, as ``torchrun --standalone --nproc-per-node N -m
fromzero ...`` (``torch.distributed.run``, in this process: it becomes torchrun's elastic agent), so a
run started either way is the same. Only rank 0's output is shown (``--local-ranks-filter 0``). Each
process gets ``OMP_NUM_THREADS`` = cores / N unless it is set (``train.threads`` still wins).

When a rank dies (killed, out of memory, a crash) the agent stops the others; this process then prints
one line naming the rank that failed first and the last complete checkpoint, and exits 2. A user error
every rank raises (exit 2) or a stop signal (exit 128 + signal) was already reported by rank 0: its exit
code is passed on without another line. SIGTERM to this process reaches every rank (torchrun's agent
forwards it): each finishes its step, they checkpoint together and the command exits 143.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from fromzero.errors import FromZeroError
from fromzero.train.checkpoint import latest_checkpoint

#: set in every process a ``--nproc`` launch starts: a rank that sees another rank fail stays quiet (the
#: launching process reports the failure once)
LAUNCHED_ENV = "FROMZERO_NPROC_LAUNCH"


class RankFailedError(FromZeroError):
    """A rank of a multi-process run died; the other ranks were stopped."""


@contextlib.contextmanager
def _quiet_agent() -> Iterator[None]:
    """torchrun's agent logs each failure as a block of text; the one-line error replaces it."""
    names = [name for name in logging.root.manager.loggerDict if name.startswith("torch.distributed")]
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _how(exitcode: int) -> str:
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with code {exitcode}"


def torchrun_args(nproc: int, argv: list[str]) -> list[str]:
    """The torchrun command line (after ``torchrun``) that runs ``fromzero argv`` on ``nproc`` local ranks."""
    return ["--standalone", "--nproc-per-node", str(nproc), "--local-ranks-filter", "0", "--monitor-interval",
            "0.2", "-m", "fromzero", *argv]


def launch(nproc: int, argv: list[str], run_dir: Path) -> int:
    """Run ``fromzero argv`` on ``nproc`` local processes; returns the exit code (0 when every rank succeeded)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    os.environ[LAUNCHED_ENV] = "1"
    try:
        with _quiet_agent():
            run(parse_args(torchrun_args(nproc, argv)))
        return 0
    except SignalException as err:  # SIGTERM / SIGINT to this process: the agent has stopped every rank
        return 128 + int(err.sigval)
    except ChildFailedError as err:
        codes = {rank: failure.exitcode for rank, failure in err.failures.items()}
        if codes.get(0) == 2 or (codes.get(0, 0) > 128 and all(c == codes[0] for c in codes.values())):
            return codes[0]  # rank 0 already printed the user error or the stop message
        rank, failure = err.get_first_failure()
        ckpt = latest_checkpoint(run_dir / "checkpoints")
        last = (f"the last complete checkpoint is {ckpt.path} (step {ckpt.step}): add --resume to continue it"
                if ckpt else f"no checkpoint was written yet in {run_dir}")
        raise RankFailedError(f"rank {rank} of {nproc} {_how(failure.exitcode)}; the other ranks were stopped; "
                              f"{last}") from None
    finally:
        os.environ.pop(LAUNCHED_ENV, None)
