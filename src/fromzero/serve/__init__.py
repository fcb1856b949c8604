"""Serving: a run directory behind an OpenAI-compatible HTTP API, with a browser playground.

    fromzero serve runs/quickstart            # http://127.0.0.1:8000/

:class:`Engine` loads a run and runs inference, :class:`Scheduler` queues
requests onto one worker thread, :func:`create_app` builds the FastAPI app,
:func:`serve` and :class:`BackgroundServer` run it under uvicorn. This
package never imports ``fromzero.train``. See docs/08-serving.md.
"""

from fromzero.serve.app import create_app
from fromzero.serve.engine import Engine, EngineStats, GenerationStream
from fromzero.serve.limits import ServeLimits
from fromzero.serve.scheduler import QueueFullError, Scheduler, SchedulerStats
from fromzero.serve.server import BackgroundServer, serve

__all__ = [
    "BackgroundServer", "Engine", "EngineStats", "GenerationStream", "QueueFullError", "Scheduler",
    "SchedulerStats", "ServeLimits", "create_app", "serve",
]
