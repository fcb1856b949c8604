"""benchmarks/serve_load.py against the test server: it runs, counts every request and computes percentiles."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "serve_load.py"


@pytest.fixture(scope="module")
def serve_load():
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_load"] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    yield module
    del sys.modules["serve_load"]


def test_percentile_matches_numpy(serve_load) -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    for q in (0, 50, 95, 99, 100):
        assert serve_load.percentile(values, q) == pytest.approx(np.percentile(values, q))


@pytest.mark.parametrize("stream", [False, True])
def test_load_run_reports_every_request(serve_load, gpt_server, capsys: pytest.CaptureFixture, stream: bool) -> None:
    argv = ["--url", gpt_server.url, "--requests", "12", "--concurrency", "3", "--max-tokens", "8", "--warmup", "1"]
    summary = serve_load.main(argv + (["--stream"] if stream else []))
    assert summary["errors"] == 0 and summary["statuses"] == {"200": 12}
    assert 12 <= summary["completion_tokens"] <= 12 * 8
    p = summary["latency_ms"]
    assert 0 < p["p50"] <= p["p95"] <= p["p99"] <= p["max"]
    assert ("first_token_ms" in summary) == stream
    assert "p99" in capsys.readouterr().out
