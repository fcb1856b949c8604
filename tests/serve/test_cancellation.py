"""A client that goes away stops the compute spent on it (observed through the engine's token counter)."""

from __future__ import annotations

import time

import httpx
import pytest

LONG = 200_000  # long_server's cap (conftest): only a cancel can end these generations


def _wait_for(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _assert_generation_stopped(server, cancelled_before: int, tokens_before: int) -> None:
    scheduler, engine = server.app.state.scheduler, server.app.state.engine
    assert _wait_for(lambda: scheduler.stats.cancelled == cancelled_before + 1), vars(scheduler.stats)
    assert _wait_for(lambda: not scheduler.busy)
    settled = engine.stats.tokens_generated
    time.sleep(0.3)
    assert engine.stats.tokens_generated == settled  # nothing runs any more
    assert 0 < settled - tokens_before < LONG


def test_disconnect_mid_stream_cancels_generation(long_server, model_id: str) -> None:
    scheduler, engine = long_server.app.state.scheduler, long_server.app.state.engine
    cancelled, tokens = scheduler.stats.cancelled, engine.stats.tokens_generated
    body = {"model": model_id, "prompt": "Elizabeth", "max_tokens": LONG, "stream": True}
    received = 0
    with httpx.Client(base_url=long_server.url, timeout=30) as client, \
            client.stream("POST", "/v1/completions", json=body) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            received += line.startswith("data: {")
            if received == 5:
                break  # leaving both blocks closes the connection mid-stream
    assert received == 5
    _assert_generation_stopped(long_server, cancelled, tokens)


def test_disconnect_while_waiting_for_a_full_reply_cancels_generation(long_server, model_id: str) -> None:
    scheduler, engine = long_server.app.state.scheduler, long_server.app.state.engine
    cancelled, tokens = scheduler.stats.cancelled, engine.stats.tokens_generated
    body = {"model": model_id, "prompt": "Elizabeth", "max_tokens": LONG}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
        httpx.post(long_server.url + "/v1/completions", json=body, timeout=httpx.Timeout(30, read=0.5))
    _assert_generation_stopped(long_server, cancelled, tokens)
    health = httpx.get(long_server.url + "/health").json()
    assert health["status"] == "ok" and health["jobs"]["failed"] == 0
