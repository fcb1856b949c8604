"""Run ``fromzero`` command lines in forks of an interpreter that has already imported it: each still runs in its
own process (its own working directory, stdin closed, stdout/stderr captured, exit code), without paying
Python's and torch's start-up (~1.5 s of CPU) once per command.

A :class:`ForkServer` is a child ``python`` that imports torch and every ``fromzero`` module once, never runs a
parallel op (a fork after one can hang the child's thread pool), then serves one command at a time: it forks,
the fork runs ``fromzero.cli.main(argv)`` as ``python -m fromzero`` would (``SystemExit``, a traceback and exit
code 1 for an uncaught exception, atexit handlers), and the server answers with the exit code and the
captured output. The bad-input table runs ~200 commands this way; the tests that check ``python -m
fromzero`` itself still start a fresh interpreter.

Protocol (one JSON object per line): request ``{"argv": [...], "cwd": "...", "timeout": s}``; reply
``{"code": n, "stdout": "...", "stderr": "..."}`` or ``{"timeout": true, ...}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _preload() -> None:
    import importlib
    import pkgutil

    import torch  # noqa: F401

    import fromzero

    for info in pkgutil.walk_packages(fromzero.__path__, "fromzero."):
        if not info.name.endswith("__main__"):
            # an optional dependency missing: the command imports (and reports) it itself
            with contextlib.suppress(Exception):
                importlib.import_module(info.name)


def _child(argv: list[str], cwd: str, out: str, err: str) -> None:
    """In the fork: become ``python -m fromzero ARGV`` run in ``cwd``; never returns."""
    import atexit
    import traceback

    code = 1
    try:
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        # new stream objects: the server's own may hold locks or buffered bytes
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        sys.argv = ["fromzero", *argv]
        from fromzero.cli import main

        try:
            code = main(argv)
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _wait(pid: int, timeout: float) -> int | None:
    """The fork's exit code, or None after killing it at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.005)


def serve() -> None:
    _preload()
    reply = sys.stdout
    sys.stdout = sys.stderr  # anything printed by mistake must not break the protocol
    print(json.dumps({"ready": True}), file=reply, flush=True)
    # not a TemporaryDirectory: its finalizer is an atexit hook, and each fork runs the atexit hooks
    tmp = tempfile.mkdtemp(prefix="forked-cli-")
    try:
        for line in sys.stdin:
            req = json.loads(line)
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            pid = os.fork()
            if pid == 0:
                _child(req["argv"], req["cwd"], out, err)
            code = _wait(pid, req["timeout"])
            texts = [Path(p).read_text(errors="replace") if os.path.exists(p) else "" for p in (out, err)]
            answer = {"code": code, "stdout": texts[0], "stderr": texts[1]}
            if code is None:
                answer["timeout"] = True
            print(json.dumps(answer), file=reply, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ForkServer:
    """A preloaded interpreter that runs ``fromzero`` commands in forks, one at a time (use one per worker)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        if not ready.strip():
            raise RuntimeError("the fork server did not start")

    def run(self, argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        """``python -m fromzero ARGV`` in ``cwd``; raises subprocess.TimeoutExpired past ``timeout`` seconds."""
        self.proc.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd), "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if answer.get("timeout"):
            raise subprocess.TimeoutExpired(["fromzero", *argv], timeout, answer["stdout"], answer["stderr"])
        return subprocess.CompletedProcess(["fromzero", *argv], answer["code"], answer["stdout"], answer["stderr"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


if __name__ == "__main__":
    serve()
