"""Scheduler: a bounded queue of jobs and one worker thread that runs them, generations batched.

The HTTP layer submits a job and gets 429 when ``max_queue`` jobs are
already waiting, so memory and latency stay bounded however many clients
connect. The worker owns the model; nothing runs it in parallel.

Continuous batching: GPT generations share one decode loop
(:class:`~fromzero.generation.text_batch.TextBatch`). Up to ``max_batch``
sequences (the engine's) decode together, one token each per step; a new
request is taken from the queue whenever a slot is free, prefilled and
joined at the next step boundary, and a finished or cancelled sequence
leaves at once. A seeded request still gets the same tokens whatever
shares its batch: every sequence keeps its own positions in the KV cache and
samples from its own ``torch.Generator`` (up to float rounding of batched
matmuls; tests/serve/test_continuous_batching.py). Other jobs (embeddings,
classifications, T5 generations) run one at a time between decode steps.

Cancellation: each job carries a flag (:meth:`Job.cancel`). The worker
checks it before starting the job and before every decode step, so a client
that disconnects stops compute within one token, and a job cancelled while
queued never starts.

The worker reports through a *sink*, a thread-safe callable that receives
events (:class:`TextDelta`, :class:`ChoiceDone`, :class:`EmbeddingsDone`,
:class:`ClassificationsDone` (text and image classifications), :class:`RecommendationsDone`, :class:`JobFailed`,
then always :class:`JobEnded`). The choices of one generation job run
side by side, so their events interleave (each carries its choice index).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import torch

from fromzero.data.interactions import Interactions
from fromzero.generation import Generation, SamplingConfig
from fromzero.generation.text_batch import TextBatch, TextSequence
from fromzero.serve.engine import Classification, Engine
from fromzero.serve.image_engine import ImageClassification
from fromzero.serve.recommend_engine import RecommendReply
from fromzero.serve.speech_engine import TranscriptionTask

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
    choices: list[Choice]  # GPT: decoded side by side in the batch; T5: one after another, in order
    stream: bool = True  # emit TextDelta events; False: only ChoiceDone (a reply collected whole)


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
class RecommendationTask:
    user: int | None  # original user id (None: a new user)
    k: int
    explain: bool
    ratings: Interactions | None  # the user's own ratings (dense items), checked by the handler


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
    results: list[Classification] | list[ImageClassification] | list[str]  # str: transcripts


@dataclass(frozen=True)
class RecommendationsDone:
    results: list[RecommendReply]  # one reply


@dataclass(frozen=True)
class JobFailed:
    message: str
    status: int = 500  # the HTTP status a non-streaming reply gets


@dataclass(frozen=True)
class JobEnded:
    """Always the last event of a job."""


Event = TextDelta | ChoiceDone | EmbeddingsDone | ClassificationsDone | RecommendationsDone | JobFailed | JobEnded
Task = (GenerationTask | EmbeddingTask | ClassificationTask | ImageClassificationTask | RecommendationTask
        | TranscriptionTask)


class Job:
    """A submitted task plus its cancel flag; events go to ``sink`` (called from the worker thread)."""

    def __init__(self, task: Task, sink: Callable[[Event], None]) -> None:
        self.id, self.task, self._sink = uuid.uuid4().hex[:24], task, sink
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


class GenerationBatch:
    """The GPT generation jobs the worker runs together, one :class:`TextBatch` step at a time."""

    def __init__(self, engine: Engine, stats: SchedulerStats) -> None:
        self.engine, self.stats = engine, stats
        self.jobs: dict[Job, list[TextSequence]] = {}  # running jobs and their choices' sequences
        self._open: dict[Job, int] = {}  # choices not finished yet
        self._text: TextBatch | None = None

    @property
    def text(self) -> TextBatch:
        if self._text is None:
            self._text = self.engine.text_batch()
        return self._text

    @property
    def has_room(self) -> bool:
        """A slot is free for another sequence."""
        return len(self.text) < self.text.decoder.max_batch

    def add(self, job: Job) -> None:
        """Queue a generation job's choices; they join the batch at its next step."""
        task = job.task
        assert isinstance(task, GenerationTask)
        self.jobs[job], self._open[job] = [], len(task.choices)
        try:
            for choice in task.choices:
                self.jobs[job].append(self.text.add(choice.prompt, choice.sampling, tag=(job, choice.index)))
                self.engine.stats.generations_started += 1
        except Exception as err:  # e.g. an empty prompt: fails this job only
            self._end(job, failed=f"inference failed: {type(err).__name__}: {err}")

    def step(self) -> None:
        """End cancelled jobs, then one token for every running sequence, its events emitted."""
        for job in [j for j in self.jobs if j.cancelled]:
            self._end(job, cancelled=True)
        if not self.jobs:
            return
        try:
            with torch.inference_mode():
                results = self.text.step()
        except Exception as err:  # the batch's state is unknown now: fail its jobs, start a fresh one
            log.exception("a decode step failed")
            self._text = None
            for job in list(self.jobs):
                self._end(job, failed=f"inference failed: {type(err).__name__}: {err}")
            return
        self.engine.stats.tokens_generated += len(results)
        for seq, delta in results:
            job, index = seq.tag
            if job not in self.jobs:
                continue
            if delta and job.task.stream:
                job.emit(TextDelta(index, delta))
            if seq.done:
                job.emit(ChoiceDone(index, seq.generation))
                self._open[job] -= 1
                if not self._open[job]:
                    self._end(job)

    def end_all(self) -> None:
        """Shutting down: every running job ends with a 503."""
        for job in list(self.jobs):
            job.emit(JobFailed("the server is shutting down", 503))
            self._end(job, cancelled=True)

    def _end(self, job: Job, *, cancelled: bool = False, failed: str | None = None) -> None:
        for seq in self.jobs.pop(job):
            if self._text is not None:
                self._text.cancel(seq)
        del self._open[job]
        if failed is not None:
            self.stats.failed += 1
            job.emit(JobFailed(failed))
        elif cancelled:
            self.stats.cancelled += 1
        else:
            self.stats.completed += 1
        job.emit(JobEnded())


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
        self._current: Job | None = None  # a job running outside the batch
        self._batch = GenerationBatch(engine, self.stats) if engine.kind == "generate" else None
        self._thread: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        """Jobs submitted and not yet started."""
        return self._waiting

    @property
    def busy(self) -> bool:
        """True while the worker runs a job (a batched generation or any other)."""
        return self._current is not None or (self._batch is not None and bool(self._batch.jobs))

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
                job.emit(JobFailed("the server is shutting down", 503))
                job.emit(JobEnded())
        if self._batch is not None:
            for job in list(self._batch.jobs):
                job.cancel()  # the worker ends them at its next step
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
        batch = self._batch
        while True:
            running = batch is not None and bool(batch.jobs)
            # Take a job when a slot is free; wait for one only when nothing is decoding.
            while batch is None or not running or batch.has_room:
                try:
                    job = self._queue.get(block=not running)
                except queue.Empty:
                    break
                if job is None:
                    if batch is not None:
                        batch.end_all()
                    return
                with self._lock:
                    self._waiting = max(0, self._waiting - 1)
                self._start(job)
                running = batch is not None and bool(batch.jobs)
            if running:
                batch.step()

    def _start(self, job: Job) -> None:
        """Run a job now, or (a GPT generation) add its choices to the batch."""
        if job.cancelled:
            self.stats.cancelled += 1
            job.emit(JobEnded())
        elif self._batch is not None and isinstance(job.task, GenerationTask):
            self._batch.add(job)
        else:
            self._current = job
            try:
                self._execute(job)
            finally:
                self._current = None

    def _execute(self, job: Job) -> None:
        try:
            finished = True
            if isinstance(t := job.task, GenerationTask):
                finished = self._generate(job, t)
            elif isinstance(t, ClassificationTask):
                job.emit(ClassificationsDone(self.engine.classify_tokens(t.inputs)))
            elif isinstance(t, ImageClassificationTask):
                job.emit(ClassificationsDone(self.engine.classify_images(t.images, t.top_k)))
            elif isinstance(t, RecommendationTask):
                job.emit(RecommendationsDone([self.engine.recommend(t.user, t.k, t.explain, t.ratings)]))
            elif isinstance(t, TranscriptionTask):
                job.emit(ClassificationsDone(self.engine.transcribe(t.features, t.beam_width)))
            else:
                job.emit(EmbeddingsDone(self.engine.embed(t.inputs)))
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
        """Unbatched (T5) generation: the choices in order, the cancel flag checked after every token."""
        for choice in task.choices:
            stream = self.engine.stream(choice.prompt, choice.sampling)
            try:
                for delta in stream:
                    if job.cancelled:
                        return False
                    if delta and task.stream:
                        job.emit(TextDelta(choice.index, delta))
            finally:
                stream.close()
            job.emit(ChoiceDone(choice.index, stream.generation))
        return True
