"""Stop signals during training: SIGTERM and SIGUSR1 ask for a checkpoint at the next step boundary.

SLURM (``#SBATCH --signal=USR1@120`` sends SIGUSR1 before the time limit), Kubernetes and torchrun's elastic
agent send SIGTERM before killing a job. Instead of dying mid-step and losing every step since the
last periodic checkpoint, the Trainer finishes the current step, writes a checkpoint atomically and
exits with 128 + the signal number (143 for SIGTERM), so ``--resume`` continues the same trajectory.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """Context manager: while active, the first SIGTERM / SIGUSR1 is recorded in :attr:`received`.

    Handlers can only be installed from the main thread; elsewhere (a training run inside a server
    thread, a test runner's worker) the signals keep their previous behaviour.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
