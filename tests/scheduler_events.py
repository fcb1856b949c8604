"""A sink for the scheduler's events in tests: keeps a job's events and signals when the job ended."""

from __future__ import annotations

import threading

from fromzero.serve.scheduler import ChoiceDone, JobEnded, TextDelta


class Recorder:
    """Pass it to ``Scheduler.submit`` as the sink; ``ended`` is set at :class:`JobEnded`."""

    def __init__(self) -> None:
        self.events: list = []
        self.ended = threading.Event()

    def __call__(self, event) -> None:
        self.events.append(event)
        if isinstance(event, JobEnded):
            self.ended.set()

    def text(self, index: int = 0) -> str:
        """The streamed text of choice ``index``."""
        return "".join(e.text for e in self.events if isinstance(e, TextDelta) and e.index == index)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def done(self) -> dict:
        """Finished generations by choice index."""
        return {e.index: e.generation for e in self.events if isinstance(e, ChoiceDone)}
