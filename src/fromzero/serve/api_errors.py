"""Errors on the wire: every failure answers ``{"error": {"message", "type", "param", "code"}}``.

This is OpenAI's error shape, so the official clients raise their typed
exceptions (``BadRequestError``, ``NotFoundError``, ``RateLimitError`` ...)
with our message. Statuses:

    400  malformed JSON, a request the server refuses (prompt too long, max_tokens over the cap)
    401  missing or wrong API key
    404  unknown model or route
    413  request body over the size limit
    422  a field of the wrong type or outside its range
    429  the queue is full
    500  a bug (logged with its traceback; the server keeps running)

Errors users can cause inside fromzero (``fromzero.errors``) answer 400.
"""

from __future__ import annotations

import json
import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fromzero.errors import FromZeroError

log = logging.getLogger("fromzero.serve")

# Pydantic names the union member that failed ("prompt.str", "prompt.list[int]"); the client wants the field.
_UNION_TAG = re.compile(r"^(str|int|float|bool|.*\[.*\])$")
_TYPES = {401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error",
          429: "rate_limit_error", 500: "server_error"}


class APIError(Exception):
    """An error answered to the client with ``status`` and the OpenAI error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or _TYPES.get(status, "invalid_request_error")


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None,
               type: str | None = None) -> dict:
    """The JSON body of an error reply."""
    return {"error": {"message": message, "type": type or _TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def error_bytes(status: int, message: str, **kwargs: str | None) -> bytes:
    """The error body serialized, for senders below FastAPI (ASGI middleware, SSE streams)."""
    return json.dumps(error_body(status, message, **kwargs)).encode()


def _json_response(err: APIError) -> JSONResponse:
    body = error_body(err.status, err.message, param=err.param, code=err.code, type=err.type)
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    return JSONResponse(body, status_code=err.status, headers=headers)


def _validation_error(exc: RequestValidationError) -> APIError:
    first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        return APIError(400, "the request body is not valid JSON: " + str(first.get("ctx", {}).get("error", "")),
                        code="invalid_json")
    loc = [str(part) for part in first.get("loc", ()) if part != "body" and not _UNION_TAG.match(str(part))]
    param = ".".join(loc) or None
    if not loc and first.get("type") in ("missing", "model_attributes_type"):
        return APIError(400, "the request body must be a JSON object sent with Content-Type: application/json",
                        code="invalid_json")
    message = f"{param}: {first['msg']}" if param else str(first["msg"])
    return APIError(422, message, param=param, code=str(first.get("type")))


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through the OpenAI error shape."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return _json_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _json_response(_validation_error(exc))

    @app.exception_handler(FromZeroError)
    async def _user_error(_: Request, exc: FromZeroError) -> JSONResponse:
        return _json_response(APIError(400, str(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _json_response(APIError(exc.status_code, str(exc.detail), code=code))


class InternalErrorGuard:
    """ASGI middleware: an unexpected exception becomes a logged 500 in the error shape.

    Starlette's own last-resort handler answers and then re-raises, which
    makes uvicorn drop the connection; here the reply completes normally, so
    a keep-alive client can go on using it. An exception after the reply
    started (mid-stream) cannot be turned into a status any more: re-raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("unhandled error", exc_info=exc)
            if started or scope["type"] != "http":
                raise
            body = error_bytes(500, f"internal server error ({type(exc).__name__}); see the server log")
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
