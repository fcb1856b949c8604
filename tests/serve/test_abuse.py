"""Bad and excessive requests: each gets the right 4xx in OpenAI's error shape, and the server stays healthy."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest


def _post(server, path: str, body: bytes | dict, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=content, headers={"content-type": "application/json"},
                      timeout=60, **kwargs)


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.mark.parametrize(("body", "status", "param"), [
    (b"{not json", 400, None),
    (b"", 400, None),
    (b"[1, 2, 3]", 400, None),
    (b"[" * 50_000 + b"]" * 50_000, 400, None),
    (b'{"model": "M", "prompt": "\\ud800 a lone surrogate"}', 400, None),
    ({"prompt": "x"}, 422, "model"),
    ({"model": "M", "prompt": "x", "max_tokens": -5}, 422, "max_tokens"),
    ({"model": "M", "prompt": "x", "max_tokens": 0}, 422, "max_tokens"),
    ({"model": "M", "prompt": "x", "max_tokens": "10"}, 422, "max_tokens"),
    ({"model": "M", "prompt": "x", "max_tokens": True}, 422, "max_tokens"),
    ({"model": "M", "prompt": 42}, 422, "prompt"),
    ({"model": "M", "prompt": ["a", 3]}, 422, "prompt"),
    ({"model": "M", "prompt": "x", "temperature": "hot"}, 422, "temperature"),
    ({"model": "M", "prompt": "x", "temperature": 2.5}, 422, "temperature"),
    ({"model": "M", "prompt": "x", "top_p": 0}, 422, "top_p"),
    ({"model": "M", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 422, "stop"),
    ({"model": "M", "prompt": "x", "stop": ""}, 422, "stop"),
    ({"model": "M", "prompt": "x", "logprobs": 3}, 422, None),
    ({"model": "M", "prompt": "x", "n": 0}, 422, "n"),
    ({"model": "M", "prompt": "x", "seed": 2**70}, 422, "seed"),
    ({"model": "M", "prompt": []}, 400, "prompt"),
    ({"model": "M", "prompt": [10**9]}, 400, "prompt"),
    ({"model": "M", "prompt": "x", "max_tokens": 100_000}, 400, "max_tokens"),
    ({"model": "M", "prompt": "x", "n": 9}, 400, "n"),
])
def test_invalid_completion_requests(gpt_server, model_id: str, body, status: int, param: str | None) -> None:
    if isinstance(body, dict):
        body = {k: (model_id if v == "M" and k == "model" else v) for k, v in body.items()}
    else:
        body = body.replace(b'"M"', json.dumps(model_id).encode())
    error = _error(_post(gpt_server, "/v1/completions", body), status)
    if param is not None:
        assert error["param"] == param, error


@pytest.mark.parametrize("body", [
    {"messages": []},
    {"messages": [{"role": "wizard", "content": "hi"}]},
    {"messages": [{"role": "user"}]},
    {"messages": [{"role": "user", "content": 5}]},
    {"messages": "hello"},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
])
def test_invalid_chat_requests(gpt_server, model_id: str, body: dict) -> None:
    _error(_post(gpt_server, "/v1/chat/completions", {"model": model_id, **body}), 422)


def test_body_must_be_sent_as_json(gpt_server, model_id: str) -> None:
    body = json.dumps({"model": model_id, "prompt": "x"}).encode()
    reply = httpx.post(gpt_server.url + "/v1/completions", content=body, headers={"content-type": "text/plain"})
    assert "Content-Type: application/json" in _error(reply, 400)["message"]


def test_a_bug_answers_500_and_the_connection_stays_usable(gpt_server, model_id: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str) -> list[int]:
        raise RuntimeError("simulated bug")

    body = {"model": model_id, "prompt": "x", "max_tokens": 2}
    with httpx.Client(base_url=gpt_server.url, timeout=60) as client:
        monkeypatch.setattr(gpt_server.app.state.engine, "encode", broken)
        assert "RuntimeError" in _error(client.post("/v1/completions", json=body), 500)["message"]
        monkeypatch.undo()
        assert client.post("/v1/completions", json=body).status_code == 200  # same keep-alive connection


def test_an_inference_failure_is_reported_in_and_out_of_streams(gpt_server, gpt_client: openai.OpenAI, model_id: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(logits, cfgs, generators):
        raise RuntimeError("simulated model failure")

    monkeypatch.setattr("fromzero.generation.batch_decoder.sample_rows", broken)  # runs in the worker's decode loop
    with pytest.raises(openai.InternalServerError, match="simulated model failure"):
        gpt_client.completions.create(model=model_id, prompt="x", max_tokens=2)
    with pytest.raises(openai.APIError, match="simulated model failure"):
        list(gpt_client.completions.create(model=model_id, prompt="x", max_tokens=2, stream=True))
    monkeypatch.undo()
    assert gpt_server.app.state.scheduler.alive


def test_unknown_model_is_404_through_the_client(gpt_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        gpt_client.completions.create(model="gpt-5", prompt="x", max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        gpt_client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])


def test_huge_prompt_and_huge_body(gpt_server, gpt_client: openai.OpenAI, model_id: str) -> None:
    with pytest.raises(openai.BadRequestError, match="at most 2,048") as caught:
        gpt_client.completions.create(model=model_id, prompt="a" * 5000, max_tokens=2)
    assert caught.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="at most 2,048"):
        gpt_client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "b" * 5000}])
    big = _post(gpt_server, "/v1/completions", {"model": model_id, "prompt": "c" * (2 << 20)})
    assert _error(big, 413)["code"] == "body_too_large"


def test_unknown_route_and_method(gpt_server) -> None:
    _error(httpx.get(gpt_server.url + "/v1/nothing-here"), 404)
    _error(httpx.get(gpt_server.url + "/v1/completions"), 405)


def test_requests_beyond_the_queue_get_429_and_the_server_recovers(small_queue_server, model_id: str) -> None:
    """200 concurrent requests against a queue of 4: each is answered 200 or 429, never 5xx."""
    body = {"model": model_id, "prompt": "Elizabeth", "max_tokens": 16, "seed": 1}

    async def flood() -> list[int]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=small_queue_server.url, timeout=120, limits=limits) as client:
            replies = await asyncio.gather(*(client.post("/v1/completions", json=body) for _ in range(200)))
        for reply in replies:
            if reply.status_code == 429:
                assert reply.json()["error"]["code"] == "queue_full"
            else:
                assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 16
        return [r.status_code for r in replies]

    statuses = asyncio.run(flood())
    assert set(statuses) == {200, 429}, sorted(set(statuses))
    health = httpx.get(small_queue_server.url + "/health").json()
    assert health["status"] == "ok" and health["queue"]["waiting"] == 0
    assert health["jobs"]["rejected"] >= statuses.count(429) and health["jobs"]["failed"] == 0
    again = _post(small_queue_server, "/v1/completions", body)
    assert again.status_code == 200


def test_server_still_healthy_after_abuse(gpt_server, gpt_client: openai.OpenAI, model_id: str) -> None:
    health = httpx.get(gpt_server.url + "/health").json()
    assert health["status"] == "ok" and health["queue"]["waiting"] == 0
    assert gpt_client.completions.create(model=model_id, prompt="x", max_tokens=4).usage.completion_tokens == 4
