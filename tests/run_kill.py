"""SIGKILL a started ``fromzero`` run once a given checkpoint exists (shared by the resume tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def kill_after_checkpoint(proc: subprocess.Popen, out: Path, step: int, final: str) -> None:
    """Kill ``proc`` once ``out/checkpoints/step_<step>`` exists (checkpoints are renamed into place whole);
    ``final`` is the file a finished run writes, which must not exist yet. ``proc`` has stderr piped."""
    target = out / "checkpoints" / f"step_{step:06d}"
    deadline = time.time() + 120
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended before checkpoint {step}: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / final).exists(), "the kill must land before the run finished"
