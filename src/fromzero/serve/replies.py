"""From scheduler events to OpenAI replies: one JSON body, or a server-sent event stream.

The worker thread pushes events into an :class:`EventChannel` (thread-safe,
wakes the event loop); a request handler either collects them into one
reply or forwards them as SSE chunks::

    data: {"object": "text_completion", "choices": [{"text": "Eliz", ...}]}\\n\\n
    ...
    data: [DONE]\\n\\n

Either way, if the client goes away the job is cancelled: the SSE generator
is closed by Starlette when the client disconnects, and a non-streaming
handler watches the connection while it waits.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request

from fromzero.generation import Generation
from fromzero.serve import schemas
from fromzero.serve.api_errors import APIError, error_body
from fromzero.serve.scheduler import (
    ChoiceDone,
    ClassificationsDone,
    EmbeddingsDone,
    Event,
    Job,
    JobEnded,
    JobFailed,
    RecommendationsDone,
    TextDelta,
)


class EventChannel:
    """Receives a job's events on the worker thread and hands them to the event loop in order."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(self, event: Event) -> None:
        """Called from the worker thread; raises RuntimeError once the loop is closed (the job then stops)."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def events(self) -> AsyncIterator[Event]:
        """The job's events up to (not including) :class:`JobEnded`."""
        while not isinstance(event := await self._queue.get(), JobEnded):
            yield event


class ClientGone(Exception):
    """The client disconnected before its reply was ready."""


@dataclass
class ReplyFormat:
    """How one kind of generation reply looks: completion (``text``) or chat (``message``/``delta``)."""

    chat: bool
    model: str
    job_id: str
    prompt_tokens: list[int]  # per distinct prompt
    n: int  # choices per prompt

    def __post_init__(self) -> None:
        self.id = ("chatcmpl-" if self.chat else "cmpl-") + self.job_id
        self.created = int(time.time())

    def usage(self, generations: dict[int, Generation]) -> schemas.Usage:
        completion = sum(g.completion_tokens for g in generations.values())
        prompt = sum(self.prompt_tokens)
        return schemas.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def reply(self, generations: dict[int, Generation]) -> schemas.CompletionResponse | schemas.ChatResponse:
        usage = self.usage(generations)
        ordered = sorted(generations.items())
        if self.chat:
            choices = [schemas.ChatChoice(index=i, message=schemas.AssistantMessage(content=g.text),
                                          finish_reason=finish_reason(g)) for i, g in ordered]
            return schemas.ChatResponse(id=self.id, created=self.created, model=self.model, choices=choices,
                                        usage=usage)
        choices = [schemas.CompletionChoice(index=i, text=g.text, finish_reason=finish_reason(g)) for i, g in ordered]
        return schemas.CompletionResponse(id=self.id, created=self.created, model=self.model, choices=choices,
                                          usage=usage)

    def chunk(self, index: int, text: str | None, finish: str | None = None, *, role: bool = False) -> str:
        """One SSE data line for choice ``index``: new text, or its finish reason."""
        if self.chat:
            delta = schemas.ChatDelta(role="assistant" if role else None, content=text)
            choice = schemas.ChatChunkChoice(index=index, delta=delta, finish_reason=finish)
            body = schemas.ChatChunk(id=self.id, created=self.created, model=self.model, choices=[choice])
        else:
            choice = schemas.CompletionChoice(index=index, text=text or "", finish_reason=finish)
            body = schemas.CompletionResponse(id=self.id, created=self.created, model=self.model, choices=[choice])
        return sse(body.model_dump_json())

    def usage_chunk(self, generations: dict[int, Generation]) -> str:
        """The closing chunk of ``stream_options.include_usage``: no choices, just the counts."""
        cls = schemas.ChatChunk if self.chat else schemas.CompletionResponse
        body = cls(id=self.id, created=self.created, model=self.model, choices=[], usage=self.usage(generations))
        return sse(body.model_dump_json())


def finish_reason(generation: Generation) -> str:
    """OpenAI has no separate "eos": the model stopping by itself is "stop", like a stop string."""
    return "length" if generation.finish_reason == "length" else "stop"


def sse(data: str) -> str:
    return f"data: {data}\n\n"


async def stream_generation(job: Job, channel: EventChannel, fmt: ReplyFormat,
                            include_usage: bool) -> AsyncIterator[str]:
    """SSE chunks of a generation job, ending with ``data: [DONE]``; closing it early cancels the job."""
    try:
        if fmt.chat:
            for i in range(len(fmt.prompt_tokens) * fmt.n):
                yield fmt.chunk(i, "", role=True)
        generations: dict[int, Generation] = {}
        async for event in channel.events():
            if isinstance(event, TextDelta):
                yield fmt.chunk(event.index, event.text)
            elif isinstance(event, ChoiceDone):
                generations[event.index] = event.generation
                yield fmt.chunk(event.index, None if fmt.chat else "", finish_reason(event.generation))
            elif isinstance(event, JobFailed):
                yield sse(json.dumps(error_body(event.status, event.message, code="inference_failed")))
                return
        if include_usage:
            yield fmt.usage_chunk(generations)
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()  # the client left (Starlette cancels us) or we are done (then a no-op)


async def collect(request: Request, job: Job, channel: EventChannel) -> tuple[dict[int, Generation], list]:
    """Wait for a job's results (generations by choice index; embedding vectors or classifications).

    Raises ClientGone (after cancelling the job) if the client disconnects
    first, and APIError 500 if the job failed.
    """
    results = asyncio.ensure_future(_gather(channel))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({results, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not results.done():
            raise ClientGone()
        return results.result()
    finally:
        if not results.done():
            job.cancel()
        results.cancel()
        gone.cancel()


async def _gather(channel: EventChannel) -> tuple[dict[int, Generation], list]:
    generations: dict[int, Generation] = {}
    vectors: list = []
    async for event in channel.events():
        if isinstance(event, ChoiceDone):
            generations[event.index] = event.generation
        elif isinstance(event, EmbeddingsDone):
            vectors = event.vectors
        elif isinstance(event, ClassificationsDone | RecommendationsDone):
            vectors = event.results
        elif isinstance(event, JobFailed):
            raise APIError(event.status, event.message, code="inference_failed")
    return generations, vectors


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the request body was already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        continue
