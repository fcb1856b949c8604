"""Optional API key: ``Authorization: Bearer <key>`` on every /v1 route, 401 when missing or wrong.

The key comes from ``fromzero serve --api-key`` or the ``FROMZERO_API_KEY``
environment variable (so it stays out of shell history and ``ps``). The
playground page and ``/health`` stay open: the page holds no data, and a
load balancer's health probe carries no key.
"""

from __future__ import annotations

import hmac
import os

from fastapi import Request

from fromzero.serve.api_errors import APIError

API_KEY_ENV = "FROMZERO_API_KEY"


def resolve_api_key(flag: str | None) -> str | None:
    """The key to require: the flag, else the environment variable, else None (no check)."""
    key = flag if flag is not None else os.environ.get(API_KEY_ENV)
    return key or None


class APIKeyCheck:
    """A FastAPI dependency comparing the bearer token with ``key`` in constant time."""

    def __init__(self, key: str | None) -> None:
        self.key = key

    async def __call__(self, request: Request) -> None:
        if self.key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise APIError(401, "missing API key: send the header 'Authorization: Bearer <key>'",
                           code="invalid_api_key")
        if not hmac.compare_digest(token.strip().encode(), self.key.encode()):
            raise APIError(401, "incorrect API key", code="invalid_api_key")
