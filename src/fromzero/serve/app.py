"""The HTTP app: OpenAI-compatible routes over one :class:`Engine`, a health probe and the playground.

    GET  /                      playground page (static, works offline)
    GET  /health                liveness, queue depth and counters (no API key)
    GET  /v1/models             the one served model
    POST /v1/completions        gpt and t5 runs; stream: true answers server-sent events
    POST /v1/chat/completions   gpt and t5 runs; messages go through the chat template
    POST /v1/embeddings         bert runs
    POST /v1/classifications    fine-tuned sequence-classification runs (``fromzero finetune``)
    POST /v1/images/classifications   image-classification runs (``fromzero train``); see below
    POST /v1/recommendations    recommender runs (``fromzero train``, task recommendation); see below
    POST /v1/transcriptions     speech runs (``fromzero train-speech``); see below

Image classification (fromzero's own route, OpenAI conventions)::

    POST /v1/images/classifications  {"model": "<id>", "images": ["<base64 PNG/JPEG/BMP/GIF/WebP>", ...], "top_k": 3}
    -> {"object": "list", "model": "<id>", "usage": {"images": n},
        "data": [{"object": "image_classification", "index": i, "label": "<top class>", "score": p,
                  "top": [{"label": ..., "score": ...}, ...]}, ...]}    # top_k best, most probable first

Each image is decoded, checked against the run's channels (an RGB image to a grayscale model is
a 400, not converted) and resized to its input size as ``fromzero predict`` reads files; scores
are softmax probabilities. A bad image answers 400 with ``param`` ``images[i]``.

Recommendations (fromzero's own route; what ``fromzero recommend`` prints)::

    POST /v1/recommendations  {"model": "<id>", "user": 15 | null, "k": 10, "explain": false,
                               "ratings": [{"movieId": 1, "rating": 4.5, "timestamp": 1700000000}, ...]}
    -> {"object": "list", "model": "<id>", "user": 15, "fallback": null | "<why>", "history": n,
        "data": [{"object": "recommendation", "rank": 1, "movieId": ..., "title": ..., "score": ...,
                  "because": [{"reason": "<history title>", "contribution": ...}, ...]}, ...]}

The history is the run's ratings of ``user`` plus ``ratings`` (optional, the user's own new ones);
nothing in it is recommended. ``fallback`` says why the most popular training items answered (no
ratings at all, or an mf model and a user it never trained on); ``because`` is empty unless
``explain``. A 400 names ``k`` (1 to the catalogue size) or ``ratings[i].movieId`` / ``ratings[i].rating``
(an unknown or repeated item, a rating outside the run's range). ``GET /v1/models/{id}`` says
``"kind": "recommendation"``; a recommender run answers no other endpoint, and no other run this one.

Transcriptions (fromzero's own route; what ``fromzero transcribe`` prints; ``serve/speech_engine.py``)::

    POST /v1/transcriptions  {"model": "<id>", "audio": "<base64 WAV: 16-bit PCM, 16 kHz, mono>", "beam": 8 | null}
    -> {"object": "transcription", "model": "<id>", "text": "<transcript>", "duration_s": 2.31}

The WAV is not converted: another sample rate, stereo, another sample width, bytes that are not a WAV file,
text that is not base64, no samples or audio longer than the model takes answer 400 with ``param`` ``audio``
(``beam`` below 1: 422). ``beam`` null uses the run's ``decode.beam_width``.

Handlers validate and turn a request into a scheduler task; the scheduler's
worker thread runs the model (GPT generations batched together, other jobs
one at a time). A new endpoint for a new
kind of run adds an ``Engine`` method, a task type in the scheduler and a
route here that checks ``engine.endpoints``, as ``/v1/embeddings`` and
``/v1/classifications`` do.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from fromzero.errors import DataError
from fromzero.generation import SamplingConfig
from fromzero.serve import schemas
from fromzero.serve.api_errors import APIError, InternalErrorGuard, install_error_handlers
from fromzero.serve.auth import APIKeyCheck
from fromzero.serve.engine import Engine
from fromzero.serve.limits import BodySizeLimit, ServeLimits
from fromzero.serve.recommend_requests import check_k, request_ratings
from fromzero.serve.replies import ClientGone, EventChannel, ReplyFormat, collect, stream_generation
from fromzero.serve.scheduler import (
    Choice,
    ClassificationTask,
    EmbeddingTask,
    GenerationTask,
    ImageClassificationTask,
    QueueFullError,
    RecommendationTask,
    Scheduler,
    Task,
)
from fromzero.serve.speech_engine import DecodedAudio, TranscriptionTask

if TYPE_CHECKING:
    import torch

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(engine: Engine, *, limits: ServeLimits | None = None, api_key: str | None = None) -> FastAPI:
    """A FastAPI app serving ``engine``; the scheduler's worker starts and stops with the app."""
    limits = limits or ServeLimits()
    scheduler = Scheduler(engine, limits.max_queue)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        scheduler.stop()
        api.close()

    app = FastAPI(title="fromzero serve", version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.engine, app.state.scheduler, app.state.limits = engine, scheduler, limits
    install_error_handlers(app)
    app.add_middleware(InternalErrorGuard)
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)  # added last: runs first
    api = OpenAIRoutes(engine, scheduler, limits)
    app.include_router(api.router(APIKeyCheck(api_key)))
    page = resources.files("fromzero.serve").joinpath("static/playground.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> JSONResponse:
        alive = scheduler.alive
        body = {"status": "ok" if alive else "worker stopped", "model": engine.model_id, "kind": engine.kind,
                "queue": {"waiting": scheduler.waiting, "max": limits.max_queue, "busy": scheduler.busy},
                "jobs": vars(scheduler.stats), "engine": vars(engine.stats)}
        return JSONResponse(body, status_code=200 if alive else 503)

    return app


class OpenAIRoutes:
    """The /v1 routes: validation, limits, and dispatch of tasks to the scheduler."""

    def __init__(self, engine: Engine, scheduler: Scheduler, limits: ServeLimits) -> None:
        self.engine, self.scheduler, self.limits = engine, scheduler, limits
        # Uploads are decoded off the event loop (a large image takes ~0.1 s), one at a time (bounded memory).
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="fromzero-serve-decode")

    def close(self) -> None:
        """Stop the decoding thread (the app's shutdown)."""
        self._decoder.shutdown(wait=False, cancel_futures=True)

    def router(self, auth: APIKeyCheck) -> APIRouter:
        router = APIRouter(prefix="/v1", dependencies=[Depends(auth)])
        router.add_api_route("/models", self.models, methods=["GET"], response_model=schemas.ModelList)
        router.add_api_route("/models/{model_id}", self.model, methods=["GET"], response_model=schemas.ModelCard)
        router.add_api_route("/completions", self.completions, methods=["POST"],
                             response_model=schemas.CompletionResponse)
        router.add_api_route("/chat/completions", self.chat, methods=["POST"], response_model=schemas.ChatResponse)
        router.add_api_route("/embeddings", self.embeddings, methods=["POST"],
                             response_model=schemas.EmbeddingResponse)
        router.add_api_route("/classifications", self.classifications, methods=["POST"],
                             response_model=schemas.ClassificationResponse)
        router.add_api_route("/images/classifications", self.image_classifications, methods=["POST"],
                             response_model=schemas.ImageClassificationResponse)
        router.add_api_route("/recommendations", self.recommendations, methods=["POST"],
                             response_model=schemas.RecommendationResponse)
        router.add_api_route("/transcriptions", self.transcriptions, methods=["POST"],
                             response_model=schemas.TranscriptionResponse)
        return router

    def _card(self) -> schemas.ModelCard:
        return schemas.ModelCard(id=self.engine.model_id, created=self.engine.created, kind=self.engine.kind,
                                 endpoints=[f"/v1/{e}" for e in self.engine.endpoints])

    async def models(self) -> schemas.ModelList:
        return schemas.ModelList(data=[self._card()])

    async def model(self, model_id: str) -> schemas.ModelCard:
        self._check_model(model_id, "model_id")
        return self._card()

    async def completions(self, body: schemas.CompletionRequest, request: Request) -> Response:
        self._check(body.model, "completions")
        prompts = self._token_inputs(body.prompt, "prompt", generation=True)
        return await self._generate(request, body, prompts, self._max_tokens(body.max_tokens, 16), chat=False,
                                    stop=body.stop_list())

    async def chat(self, body: schemas.ChatRequest, request: Request) -> Response:
        self._check(body.model, "chat/completions")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in body.messages]
        prompt = self._token_inputs(self.engine.chat_prompt(messages), "messages", generation=True)
        requested = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        stop = body.stop_list() + list(self.engine.chat_template.stop)
        return await self._generate(request, body, prompt, self._max_tokens(requested, self.limits.max_tokens),
                                    chat=True, stop=stop)

    async def embeddings(self, body: schemas.EmbeddingRequest, request: Request) -> schemas.EmbeddingResponse:
        self._check(body.model, "embeddings")
        inputs = self._capped(self._token_inputs(body.input, "input", generation=False), "inputs", "embeds")
        vectors = await self._run_batch(EmbeddingTask(inputs), request)
        if vectors is None:
            return Response(status_code=499)
        data = [schemas.Embedding(index=i, embedding=_encode_vector(v, body.encoding_format))
                for i, v in enumerate(vectors)]
        tokens = sum(min(len(ids), self.engine.context_length) for ids in inputs)
        return schemas.EmbeddingResponse(data=data, model=self.engine.model_id,
                                         usage=schemas.Usage(prompt_tokens=tokens, total_tokens=tokens))

    async def classifications(self, body: schemas.ClassificationRequest,
                              request: Request) -> schemas.ClassificationResponse | Response:
        self._check(body.model, "classifications")
        inputs = self._capped([self.engine.frame(ids) for ids in self._token_inputs(body.input, "input",
                                                                                        generation=False)],
                              "inputs", "classifies")
        results = await self._run_batch(ClassificationTask(inputs), request)
        if results is None:
            return Response(status_code=499)
        data = [schemas.Classification(index=i, label=r.label, score=r.score, scores=r.scores)
                for i, r in enumerate(results)]
        tokens = sum(len(ids) for ids, _ in inputs)
        return schemas.ClassificationResponse(model=self.engine.model_id, data=data,
                                              usage=schemas.Usage(prompt_tokens=tokens, total_tokens=tokens))

    async def image_classifications(self, body: schemas.ImageClassificationRequest,
                                    request: Request) -> schemas.ImageClassificationResponse | Response:
        self._check(body.model, "images/classifications")
        if not body.images:
            raise APIError(400, "images is an empty list: send at least one base64-encoded image", param="images")
        self._capped(body.images, "images", "classifies", param="images")
        images = await asyncio.get_running_loop().run_in_executor(self._decoder, self._images, body.images)
        results = await self._run_batch(ImageClassificationTask(images, body.top_k), request)
        if results is None:
            return Response(status_code=499)
        data = [schemas.ImageClassification(index=i, label=r.label, score=r.score,
                                            top=[schemas.LabelScore(label=lab, score=p) for lab, p in r.top])
                for i, r in enumerate(results)]
        return schemas.ImageClassificationResponse(model=self.engine.model_id, data=data,
                                                   usage=schemas.ImageUsage(images=len(data)))

    async def recommendations(self, body: schemas.RecommendationRequest,
                              request: Request) -> schemas.RecommendationResponse | Response:
        self._check(body.model, "recommendations")
        rec = self.engine.recommender
        task = RecommendationTask(body.user, check_k(body.k, rec), body.explain, request_ratings(body.ratings, rec))
        results = await self._run_batch(task, request)  # through the worker, as every model call is
        if results is None:
            return Response(status_code=499)
        reply = results[0]
        data = [schemas.Recommendation(rank=rank, movieId=r.item_id, title=r.title, score=r.score,
                                       because=[schemas.Reason(reason=t, contribution=c) for t, c in r.because])
                for rank, r in enumerate(reply.items, 1)]
        return schemas.RecommendationResponse(model=self.engine.model_id, user=body.user, fallback=reply.fallback,
                                              history=reply.history, data=data)

    async def transcriptions(self, body: schemas.TranscriptionRequest,
                             request: Request) -> schemas.TranscriptionResponse | Response:
        self._check(body.model, "transcriptions")
        audio = await asyncio.get_running_loop().run_in_executor(self._decoder, self._audio, body.audio)
        results = await self._run_batch(TranscriptionTask([audio.features], body.beam), request)
        if results is None:
            return Response(status_code=499)
        return schemas.TranscriptionResponse(model=self.engine.model_id, text=results[0],
                                             duration_s=round(audio.duration_s, 4))

    def _audio(self, text: str) -> DecodedAudio:
        """The base64 WAV decoded for the model before anything is queued; a 400 naming ``audio`` if unusable."""
        try:
            return self.engine.transcriber.decode(text, "audio")
        except DataError as err:
            raise APIError(400, str(err), param="audio") from None

    def _images(self, texts: list[str]) -> list[torch.Tensor]:
        """Every base64 image decoded for the model before anything is queued; the first that cannot be used
        is a 400 naming it (``images[i]``)."""
        images = []
        for i, text in enumerate(texts):
            where = f"images[{i}]"
            try:
                images.append(self.engine.decode_image(text, where, self.limits.max_image_pixels))
            except DataError as err:
                raise APIError(400, str(err), param=where) from None
        return images

    def _capped(self, inputs: list, noun: str, verb: str, param: str = "input") -> list:
        """``inputs`` unless there are more than a request may batch (then a 400 naming the cap)."""
        if len(inputs) > self.limits.max_embedding_inputs:
            raise APIError(400, f"{len(inputs)} {noun}; this server {verb} at most "
                           f"{self.limits.max_embedding_inputs} per request", param=param)
        return inputs

    async def _run_batch(self, task: Task, request: Request) -> list | None:
        """Queue a batch task and wait for its results; None when the client went away first."""
        job, channel = self._submit(task)
        try:
            return (await collect(request, job, channel))[1]
        except ClientGone:
            return None

    def _check_model(self, model: str, param: str) -> None:
        if model != self.engine.model_id:
            raise APIError(404, f"the model {model!r} does not exist; this server serves {self.engine.model_id!r} "
                           "(GET /v1/models)", param=param, code="model_not_found")

    def _check(self, model: str, endpoint: str) -> None:
        self._check_model(model, "model")
        if endpoint not in self.engine.endpoints:
            served = ", ".join(f"/v1/{e}" for e in self.engine.endpoints)
            raise APIError(400, f"{model!r} is a {self.engine.family} run: it serves {served}, not /v1/{endpoint}",
                           param="model", code="unsupported_endpoint")

    def _max_tokens(self, requested: int | None, default: int) -> int:
        value = min(default, self.limits.max_tokens) if requested is None else requested
        if value > self.limits.max_tokens:
            raise APIError(400, f"max_tokens is {value}; this server generates at most {self.limits.max_tokens} "
                           "tokens per choice (--max-tokens)", param="max_tokens", code="max_tokens_exceeded")
        return value

    def _token_inputs(self, value: schemas.Prompt, param: str, *, generation: bool) -> list[list[int]]:
        """Text(s) or token ids -> checked id lists (family conventions applied for generation)."""
        if isinstance(value, str):
            rows = [self.engine.encode(value)]
        elif not value:
            raise APIError(400, f"{param} is an empty list", param=param)
        elif isinstance(value[0], str):
            rows = [self.engine.encode(text) for text in value]
        elif isinstance(value[0], int):
            rows = [list(value)]
        else:
            rows = [list(ids) for ids in value]
        vocab = self.engine.vocab_size
        for i, ids in enumerate(rows):
            if any(not 0 <= t < vocab for t in ids):
                raise APIError(400, f"{param}[{i}] has token ids outside the vocabulary [0, {vocab})", param=param)
            if len(ids) > self.limits.max_prompt_tokens:
                raise APIError(400, f"{param}[{i}] has {len(ids):,} tokens; this server accepts at most "
                               f"{self.limits.max_prompt_tokens:,} (--max-prompt-tokens)", param=param,
                               code="context_length_exceeded")
        rows = [self.engine.prepare_prompt(ids) for ids in rows] if generation else rows
        if any(not ids for ids in rows):
            raise APIError(400, f"{param} is empty: give at least one token", param=param)
        return rows

    def _submit(self, task: Task) -> tuple:
        channel = EventChannel()
        try:
            return self.scheduler.submit(task, channel.put), channel
        except QueueFullError as err:
            raise APIError(429, str(err), code="queue_full") from None

    async def _generate(self, request: Request, body: schemas.CompletionRequest | schemas.ChatRequest,
                        prompts: list[list[int]], max_tokens: int, *, chat: bool, stop: list[str]) -> Response:
        n = body.n or 1
        if len(prompts) * n > self.limits.max_choices:
            raise APIError(400, f"{len(prompts)} prompt(s) x n={n} choices; this server generates at most "
                           f"{self.limits.max_choices} per request", param="n")
        choices = []
        for p, ids in enumerate(prompts):
            for j in range(n):
                try:
                    cfg = SamplingConfig(
                        max_new_tokens=max_tokens, temperature=1.0 if body.temperature is None else body.temperature,
                        top_p=None if body.top_p in (None, 1.0) else body.top_p, stop=stop,
                        seed=None if body.seed is None else body.seed + j)
                except ValueError as err:
                    raise APIError(400, str(err)) from None
                choices.append(Choice(p * n + j, ids, cfg))
        job, channel = self._submit(GenerationTask(choices, stream=bool(body.stream)))
        fmt = ReplyFormat(chat=chat, model=self.engine.model_id, job_id=job.id, n=n,
                          prompt_tokens=[self._used_tokens(ids) for ids in prompts])
        if body.stream:
            usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(stream_generation(job, channel, fmt, usage), media_type="text/event-stream",
                                     headers=SSE_HEADERS)
        try:
            generations, _ = await collect(request, job, channel)
        except ClientGone:
            return Response(status_code=499)
        if len(generations) < len(choices):
            raise APIError(503, "the generation was cancelled (the server is shutting down)", code="cancelled")
        return JSONResponse(fmt.reply(generations).model_dump())

    def _used_tokens(self, ids: list[int]) -> int:
        """Prompt tokens the model actually reads after truncation to its context."""
        return min(len(ids), self.engine.context_length - 1 if self.engine.kind == "generate"
                   else self.engine.context_length)


def _encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    """floats as given, or base64 of little-endian float32 (what the openai client requests by default)."""
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
