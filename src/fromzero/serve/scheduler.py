"""Scheduler: a bounded queue of jobs and one worker thread that runs them in arrival order.

Requests never run the model in parallel: the HTTP layer submits a job and
returns 429 when ``max_queue`` jobs are already waiting, so memory and
latency stay bounded however many clients connect.

Why one job at a time rather than a batch: a request's tokens then depend
only on its own prompt and seed. Batching pads rows together and draws
every row from one random generator, so a seeded request would answer
differently depending on which strangers shared its batch. On CPU one
sequence already keeps every intra-op thread busy, so the throughput given
up is small for the models fromzero trains (measure it with
``benchmarks/serve_load.py``).

Cancellation: each job carries a flag (:meth:`Job.cancel`). The worker
checks it before starting the job and after every generated token, so a
client that disconnects stops compute within one token, and a job cancelled
while queued never starts.

The worker reports through a *sink*, a thread-safe callable that receives
events (:class:`TextDelta`, :class:`ChoiceDone`, :class:`EmbeddingsDone`,
:class:`ClassificationsDone` (text and image classifications), :class:`JobFailed`,
then always :class:`JobEnded`).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import torch

from fromzero.generation import Generation, SamplingConfig
from fromzero.serve.engine import Classification, Engine
from fromzero.serve.image_engine import ImageClassification

log = logging.getLogger("fromzero.serve")


class QueueFullError(RuntimeError):
    """Raised by :meth:`Scheduler.submit` when ``max_queue`` jobs are already waiting (HTTP 429)."""


@dataclass(frozen=True)
class Choice:
    """One completion to generate: its index in the reply, prepared prompt ids and sampling settings."""

    index: int
    prompt: list[int]
    sampling: SamplingConfig


@dataclass(frozen=True)
class GenerationTask:
    choices: list[Choice]  # generated one after another, in order


@dataclass(frozen=True)
class EmbeddingTask:
    inputs: list[list[int]]  # token ids, one list per input


@dataclass(frozen=True)
class ClassificationTask:
    inputs: list[tuple[list[int], list[int]]]  # framed (input_ids, token_type_ids), one per input


@dataclass(frozen=True)
class ImageClassificationTask:
    images: list[torch.Tensor]  # decoded uint8 (C, H, W), one per image; run in batches of 32
    top_k: int  # classes listed per image


@dataclass(frozen=True)
class TextDelta:
    index: int
    text: str


@dataclass(frozen=True)
class ChoiceDone:
    index: int
    generation: Generation


@dataclass(frozen=True)
class EmbeddingsDone:
    vectors: list[list[float]]


@dataclass(frozen=True)
class ClassificationsDone:
    results: list[Classification] | list[ImageClassification]


@dataclass(frozen=True)
class JobFailed:
    message: str
    status: int = 500  # the HTTP status a non-streaming reply gets


@dataclass(frozen=True)
class JobEnded:
    """Always the last event of a job."""


Event = TextDelta | ChoiceDone | EmbeddingsDone | ClassificationsDone | JobFailed | JobEnded
Task = GenerationTask | EmbeddingTask | ClassificationTask | ImageClassificationTask


class Job:
    """A submitted task plus its cancel flag; events go to ``sink`` (called from the worker thread)."""

    def __init__(self, task: Task, sink: Callable[[Event], None]) -> None:
        self.id = uuid.uuid4().hex[:24]
        self.task = task
        self._sink = sink
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the worker to stop this job (before it starts, or at the next token)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def emit(self, event: Event) -> None:
        try:
            self._sink(event)
        except RuntimeError:  # the receiving event loop is closed: nobody is listening any more
            self.cancel()


@dataclass
class SchedulerStats:
    """Job counters (written by the worker and by submit)."""

    submitted: int = 0
    rejected: int = 0  # queue full
    completed: int = 0
    cancelled: int = 0
    failed: int = 0


class Scheduler:
    """Runs jobs for one :class:`Engine` on a single worker thread; at most ``max_queue`` jobs wait."""

    def __init__(self, engine: Engine, max_queue: int) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.engine, self.max_queue = engine, max_queue
        self.stats = SchedulerStats()
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting = 0
        self._current: Job | None = None
        self._thread: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        """Jobs submitted and not yet started."""
        return self._waiting

    @property
    def busy(self) -> bool:
        """True while the worker runs a job."""
        return self._current is not None

    @property
    def alive(self) -> bool:
        """True while the worker thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="fromzero-serve-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job, let the worker finish its current token, and end the thread."""
        with self._lock:
            self._waiting = 0
            pending = []
            while True:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
        for job in pending:
            if job is not None:
                job.cancel()
                if job is not self._current:  # the running job reports its own end
                    job.emit(JobFailed("the server is shutting down", 503))
                    job.emit(JobEnded())
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, task: Task, sink: Callable[[Event], None]) -> Job:
        """Queue a task; raises QueueFullError when ``max_queue`` jobs are already waiting."""
        job = Job(task, sink)
        with self._lock:
            if self._waiting >= self.max_queue:
                self.stats.rejected += 1
                raise QueueFullError(f"the server is busy: {self._waiting} requests are queued "
                                     f"(limit {self.max_queue}); retry shortly")
            self._waiting += 1
            self.stats.submitted += 1
            self._queue.put(job)
        return job

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._waiting = max(0, self._waiting - 1)
                self._current = job
            try:
                self._execute(job)
            finally:
                self._current = None

    def _execute(self, job: Job) -> None:
        try:
            if job.cancelled:
                finished = False
            elif isinstance(job.task, GenerationTask):
                finished = self._generate(job, job.task)
            elif isinstance(job.task, ClassificationTask):
                job.emit(ClassificationsDone(self.engine.classify_tokens(job.task.inputs)))
                finished = True
            elif isinstance(job.task, ImageClassificationTask):
                job.emit(ClassificationsDone(self.engine.classify_images(job.task.images, job.task.top_k)))
                finished = True
            else:
                job.emit(EmbeddingsDone(self.engine.embed(job.task.inputs)))
                finished = True
        except Exception as err:  # a model or tokenizer error fails this job, never the worker
            log.exception("job %s failed", job.id)
            self.stats.failed += 1
            job.emit(JobFailed(f"inference failed: {type(err).__name__}: {err}"))
        else:
            if finished:
                self.stats.completed += 1
            else:
                self.stats.cancelled += 1
        finally:
            job.emit(JobEnded())

    def _generate(self, job: Job, task: GenerationTask) -> bool:
        """Run the choices in order, checking the cancel flag after every token; False if cancelled."""
        for choice in task.choices:
            stream = self.engine.stream(choice.prompt, choice.sampling)
            try:
                for delta in stream:
                    if job.cancelled:
                        return False
                    if delta:
                        job.emit(TextDelta(choice.index, delta))
            finally:
                stream.close()
            job.emit(ChoiceDone(choice.index, stream.generation))
        return True
