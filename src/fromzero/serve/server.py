"""Running the app under uvicorn: in the foreground (``fromzero serve``) or on a background thread.

:class:`BackgroundServer` is what tests and the load benchmark use: it binds
port 0 by default (the OS picks a free port, so nothing races for it),
waits until uvicorn accepts connections and exposes ``url``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from fromzero.serve.app import create_app
from fromzero.serve.engine import DEFAULT_MAX_BATCH, Engine
from fromzero.serve.limits import ServeLimits

DEFAULT_HOST = "127.0.0.1"  # local only: exposing a model to a network is a deliberate --host choice
DEFAULT_PORT = 8000


def serve(run_dir: str | Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          limits: ServeLimits | None = None, api_key: str | None = None, model_id: str | None = None,
          chat_template: str | None = None, log_level: str = "info", max_batch: int = DEFAULT_MAX_BATCH) -> None:
    """Load ``run_dir`` and serve it until interrupted (Ctrl-C); up to ``max_batch`` generations decode together."""
    engine = Engine.from_run_dir(run_dir, model_id=model_id, chat_template=chat_template, max_batch=max_batch)
    app = create_app(engine, limits=limits, api_key=api_key)
    where = "every interface" if host in ("0.0.0.0", "::") else host
    print(f"serving {engine.model_id} ({engine.family} run, {', '.join(engine.endpoints)}) on {where}")
    print(f"playground: http://{'127.0.0.1' if where == 'every interface' else host}:{port}/"
          + ("  (API key required for /v1)" if api_key else ""))
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: a normal way to stop
        print("server stopped")


class BackgroundServer:
    """uvicorn serving ``app`` on a daemon thread; use as a context manager or call start()/stop()."""

    def __init__(self, app: FastAPI, *, host: str = DEFAULT_HOST, port: int = 0, log_level: str = "warning") -> None:
        self.app = app
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:53127`` (append ``/v1`` for OpenAI clients)."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        """Start serving and block until the socket accepts connections."""
        self._thread = threading.Thread(target=self._server.run, name="fromzero-serve-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start within {timeout:.0f}s (see the log above)")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit (runs the app's shutdown) and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
