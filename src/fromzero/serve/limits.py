"""Server limits and the request-body size guard.

Each limit bounds one resource a client could otherwise exhaust: memory
(body size, prompt length, embedding inputs, decoded image size), compute per request
(``max_tokens`` x choices) and waiting requests (queue depth). A request
over a limit is refused before any model work, with a 4xx OpenAI error.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fromzero.errors import ConfigError
from fromzero.serve.api_errors import error_bytes


@dataclass(frozen=True)
class ServeLimits:
    """Caps applied to every request (``fromzero serve --max-...`` flags)."""

    max_prompt_tokens: int = 2048  # per prompt or embedding input, before truncation to the model's context
    max_tokens: int = 512  # cap on a request's max_tokens (per choice)
    max_body_bytes: int = 1 << 20  # 1 MiB
    max_queue: int = 64  # requests waiting for the model; more get 429
    max_choices: int = 8  # prompts x n in one completion request
    max_embedding_inputs: int = 128  # also texts per classification and images per image classification
    max_image_pixels: int = 4096 * 4096  # width x height of one uploaded image, read before decoding

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"serve limit {name} must be a positive integer, got {value!r}")


class BodySizeLimit:
    """ASGI middleware: answer 413 when a request body exceeds ``max_bytes``.

    A declared Content-Length over the limit is refused before reading;
    otherwise the body is read up to the limit (chunked uploads too), then
    replayed to the app. Later ``receive`` calls pass through, so the app
    still hears the client disconnect.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(send)
                return
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replaying_receive() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replaying_receive, send)

    async def _refuse(self, send: Send) -> None:
        body = error_bytes(413, f"the request body exceeds {self.max_bytes:,} bytes", code="body_too_large")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
