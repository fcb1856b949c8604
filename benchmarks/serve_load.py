"""Load test for `fromzero serve`: N completion requests at concurrency C, throughput and latency percentiles.

Against a running server (``--url``) or one this script starts in a child
process from a run directory (``fromzero serve``, as users deploy it, so the
load generator and the server do not share a Python interpreter). Each
request is a seeded completion of ``--max-tokens`` tokens; requests are
spread over C client connections, each sending its next request as soon as
the previous one answered (a closed loop, so C is the number in flight).

Reported: wall time, requests/s, completion tokens/s, latency p50/p95/p99/max
(time to the full reply; with ``--stream`` also time to the first token),
and errors (any non-200 reply or transport failure, by status). The peer in
the same run: the run's engine called directly in this process with the same
requests, batched ``--concurrency`` at a time by its own continuous batch (no
HTTP, no queue, no threads); the ratio server/direct shows what serving costs
in tokens/s. The started server gets ``--max-batch`` = ``--concurrency``.

Run:
  .venv/bin/python benchmarks/serve_load.py runs/quickstart --requests 500 --concurrency 16
  .venv/bin/python benchmarks/serve_load.py --url http://127.0.0.1:8000 --requests 100 --concurrency 8 --stream
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    first_token: list[float] = field(default_factory=list)  # seconds, streaming only
    statuses: Counter = field(default_factory=Counter)  # HTTP status or exception name -> count
    completion_tokens: int = 0

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def request_body(args: argparse.Namespace, model: str, i: int) -> dict:
    return {"model": model, "prompt": args.prompt, "max_tokens": args.max_tokens, "temperature": args.temperature,
            "seed": i, "stream": args.stream, **({"stream_options": {"include_usage": True}} if args.stream else {})}


async def one_request(client: httpx.AsyncClient, body: dict, results: Results) -> None:
    start = time.perf_counter()
    try:
        if body["stream"]:
            tokens = await _streamed(client, body, results, start)
        else:
            reply = await client.post("/v1/completions", json=body)
            results.statuses[reply.status_code] += 1
            tokens = reply.json()["usage"]["completion_tokens"] if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError) as err:  # transport failure or an unparseable reply
        results.statuses[type(err).__name__] += 1
        return
    if tokens is not None:
        results.latencies.append(time.perf_counter() - start)
        results.completion_tokens += tokens


async def _streamed(client: httpx.AsyncClient, body: dict, results: Results, start: float) -> int | None:
    async with client.stream("POST", "/v1/completions", json=body) as reply:
        results.statuses[reply.status_code] += 1
        if reply.status_code != 200:
            await reply.aread()
            return None
        tokens, first = 0, None
        async for line in reply.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if first is None and chunk.get("choices") and chunk["choices"][0].get("text"):
                first = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
        if first is not None:
            results.first_token.append(first)
        return tokens


async def run_load(args: argparse.Namespace, url: str, model: str) -> tuple[Results, float]:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    results = Results()
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=args.timeout) as client:
        for i in range(args.warmup):  # not measured: first-call allocations, connection setup
            await one_request(client, request_body(args, model, -1 - i), Results())
        next_index = iter(range(args.requests))

        async def worker() -> None:
            for i in next_index:  # shared iterator: each request is taken by exactly one worker
                await one_request(client, request_body(args, model, i), results)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - start
    return results, wall


def direct_engine_rate(args: argparse.Namespace) -> float:
    """The peer: completion tokens/s of the same requests on the bare engine in this process, batched.

    The requests (same prompt, max_tokens, temperature and seeds as the load) go through the engine's own
    continuous batch (``Engine.text_batch``) with ``--concurrency`` slots, as fast as it can take them: no
    HTTP, no queue, no threads. server/direct near 1 means serving costs little on top of the engine.
    """
    import torch

    from fromzero.generation import SamplingConfig
    from fromzero.serve import Engine

    if args.threads is not None:  # the same torch threads as the server, so the ratio compares like with like
        torch.set_num_threads(args.threads)
    engine = Engine.from_run_dir(args.run_dir, max_batch=args.concurrency)
    ids = engine.prepare_prompt(engine.encode(args.prompt))
    count = args.baseline_requests if args.baseline_requests is not None else args.requests
    batch = engine.text_batch()
    with torch.inference_mode():
        for i in range(-1, -1 - args.warmup, -1):  # not measured, as the load's warm-up requests
            batch.add(ids, SamplingConfig(max_new_tokens=args.max_tokens, temperature=args.temperature, seed=i))
        while len(batch):
            batch.step()
        seqs = [batch.add(ids, SamplingConfig(max_new_tokens=args.max_tokens, temperature=args.temperature, seed=i))
                for i in range(count)]
        start = time.perf_counter()
        while len(batch):
            batch.step()
        elapsed = time.perf_counter() - start
    return sum(seq.generation.completion_tokens for seq in seqs) / elapsed


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:  # a free port for the child (it binds it a moment later)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    queue = max(64, args.concurrency * 2)
    cmd = [sys.executable, "-m", "fromzero", "serve", args.run_dir, "--port", str(port), "--max-queue", str(queue),
           "--max-tokens", str(max(512, args.max_tokens)), "--max-batch", str(args.concurrency)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    env = {**os.environ, "FROMZERO_API_KEY": args.api_key or ""}
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read() if server.stderr else ''}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not become healthy within 120 s")


def report(args: argparse.Namespace, results: Results, wall: float, model: str, url: str,
           direct: float | None) -> dict:
    lat = [x * 1000 for x in results.latencies]
    latency = {f"p{q}": round(percentile(lat, q), 1) for q in (50, 95, 99)}
    latency["max"] = round(max(lat), 1) if lat else math.nan
    summary = {
        "requests": args.requests, "concurrency": args.concurrency, "max_tokens": args.max_tokens,
        "stream": args.stream, "model": model, "url": url, "wall_s": round(wall, 3),
        "requests_per_s": round(args.requests / wall, 2), "tokens_per_s": round(results.completion_tokens / wall, 1),
        "completion_tokens": results.completion_tokens,
        "latency_ms": latency,
        "errors": results.errors, "statuses": {str(k): v for k, v in sorted(results.statuses.items(), key=str)},
    }
    if results.first_token:
        ttft = [x * 1000 for x in results.first_token]
        summary["first_token_ms"] = {f"p{q}": round(percentile(ttft, q), 1) for q in (50, 95, 99)}
    print(f"serve load: {args.requests} requests, concurrency {args.concurrency}, max_tokens {args.max_tokens}, "
          f"{'streaming' if args.stream else 'non-streaming'}, model {model} at {url}")
    print(f"  wall time      {wall:.2f} s")
    print(f"  throughput     {summary['requests_per_s']:.2f} req/s, {summary['tokens_per_s']:.1f} completion tokens/s "
          f"({results.completion_tokens:,} tokens)")
    p = summary["latency_ms"]
    print(f"  latency (ms)   p50 {p['p50']:.1f}  p95 {p['p95']:.1f}  p99 {p['p99']:.1f}  max {p['max']:.1f}")
    if "first_token_ms" in summary:
        t = summary["first_token_ms"]
        print(f"  first token    p50 {t['p50']:.1f}  p95 {t['p95']:.1f}  p99 {t['p99']:.1f} ms")
    print(f"  errors         {results.errors} (statuses {summary['statuses']})")
    if direct is not None:
        summary["direct_tokens_per_s"] = round(direct, 1)
        summary["server_over_direct"] = round(summary["tokens_per_s"] / direct, 3)
        count = args.baseline_requests if args.baseline_requests is not None else args.requests
        print(f"  direct engine  {direct:.1f} tokens/s ({count} generations in-process, batched {args.concurrency} "
              f"at a time, no HTTP) -> server/direct {summary['server_over_direct']:.2f}x")
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", nargs="?", help="run directory to serve (starts `fromzero serve` itself)")
    parser.add_argument("--url", help="benchmark a running server instead, e.g. http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--prompt", default="Elizabeth")
    parser.add_argument("--stream", action="store_true", help="stream replies (adds time-to-first-token)")
    parser.add_argument("--api-key", default=os.environ.get("FROMZERO_API_KEY"))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="per-request timeout in seconds")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the started server and of the direct-engine peer (default: torch's)")
    parser.add_argument("--baseline-requests", type=int, default=None,
                        help="requests of the direct-engine peer (default: --requests; 0: skip)")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    if (args.run_dir is None) == (args.url is None):
        parser.error("give a run directory or --url (one of them)")
    if args.requests < 1 or args.concurrency < 1 or args.max_tokens < 1:
        parser.error("--requests, --concurrency and --max-tokens must be positive")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    direct = direct_engine_rate(args) if args.run_dir and args.baseline_requests != 0 else None
    server, url = start_server(args) if args.run_dir else (None, args.url.rstrip("/"))
    try:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        model = httpx.get(url + "/v1/models", headers=headers, timeout=30).json()["data"][0]["id"]
        results, wall = asyncio.run(run_load(args, url, model))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    summary = report(args, results, wall, model, url, direct)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    return summary


if __name__ == "__main__":
    sys.exit(1 if main()["errors"] else 0)
