"""precision: 'auto' resolution and the bounded timing probe, on fake steps whose speed depends on autocast."""

from __future__ import annotations

import signal
import time

import pytest
import torch

from fromzero.models import create_model
from fromzero.train import precision_probe
from fromzero.train.precision import resolve_precision
from fromzero.train.precision_probe import PRECISIONS, cpu_summary, probe_precision


def _under_bf16() -> bool:
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def fake_step(fp32_s: float, bf16_s: float, calls: dict | None = None):
    """A 'training step' that sleeps for as long as its precision is said to take."""
    def step() -> None:
        bf16 = _under_bf16()
        if calls is not None:
            calls["bf16" if bf16 else "fp32"] = calls.get("bf16" if bf16 else "fp32", 0) + 1
        time.sleep(bf16_s if bf16 else fp32_s)
    return step


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend this CPU multiplies bf16 natively, so the probe times the bf16 step itself."""
    monkeypatch.setattr(precision_probe, "matmul_slowdown", lambda device, n=256: 0.5)


@pytest.mark.parametrize("fp32_s,bf16_s,expected", [(0.02, 0.005, "bf16"), (0.005, 0.02, "fp32")])
def test_probe_returns_the_faster_precision(native_bf16, fp32_s, bf16_s, expected):
    calls: dict[str, int] = {}
    probe = probe_precision(fake_step(fp32_s, bf16_s, calls), "cpu", seconds=0.5, tokens_per_step=100)
    assert probe.fastest == expected
    assert calls["fp32"] >= 2 and calls["bf16"] >= 2  # a warm-up and at least one timed step each
    sps = probe.seconds_per_step
    assert fp32_s <= sps["fp32"] < fp32_s + 0.05 and bf16_s <= sps["bf16"] < bf16_s + 0.05  # a sleep never ends early
    assert probe.tokens_per_s["fp32"] == pytest.approx(100 / sps["fp32"])
    assert expected in probe.summary() and probe.cpu == cpu_summary()


def test_equal_speed_keeps_fp32(native_bf16):
    assert probe_precision(fake_step(0.01, 0.01), "cpu", seconds=0.3).fastest == "fp32"


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="the watchdog needs POSIX interval timers")
def test_a_very_slow_bf16_step_is_abandoned_within_the_budget(native_bf16):
    calls: dict[str, int] = {}
    handler = signal.getsignal(signal.SIGALRM)
    start = time.perf_counter()
    probe = probe_precision(fake_step(0.01, 60.0, calls), "cpu", seconds=0.5)
    assert time.perf_counter() - start < 15  # generous: the bf16 step alone would sleep a minute
    assert probe.fastest == "fp32" and probe.seconds_per_step["bf16"] is None
    assert calls["bf16"] == 1 and "bf16 step took over" in probe.reason
    assert signal.getsignal(signal.SIGALRM) is handler and signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_emulated_bf16_never_runs_the_bf16_step(monkeypatch):
    monkeypatch.setattr(precision_probe, "matmul_slowdown", lambda device, n=256: 90.0)
    calls: dict[str, int] = {}
    probe = probe_precision(fake_step(0.01, 60.0, calls), "cpu", seconds=0.2)
    assert "bf16" not in calls and probe.fastest == "fp32" and probe.matmul_slowdown == 90.0
    assert "no native bf16" in probe.reason


def test_the_real_matmul_check_bounds_the_probe_too():
    # whatever this CPU is: emulated bf16 is caught by the matmul check, native bf16 by the watchdog
    start = time.perf_counter()
    probe = probe_precision(fake_step(0.01, 60.0), "cpu", seconds=0.5)
    assert time.perf_counter() - start < 15 and probe.fastest == "fp32"


def test_probe_is_cached_per_device_and_key(native_bf16):
    calls: dict[str, int] = {}
    step = fake_step(0.002, 0.004, calls)
    key = ("probe-cache-test", 8, 64)
    first = probe_precision(step, "cpu", seconds=0.1, key=key)
    ran = dict(calls)
    assert probe_precision(step, torch.device("cpu"), seconds=0.1, key=key) is first
    assert calls == ran  # nothing ran the second time
    probe_precision(step, "cpu", seconds=0.1, key=key + ("other",))
    probe_precision(step, "cpu", seconds=0.1)  # no key: never cached
    assert calls["fp32"] >= 3 * ran["fp32"]


def test_probe_restores_the_rng_state(native_bf16):
    def step() -> None:
        torch.rand(10)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    probe_precision(step, "cpu", seconds=0.05)
    assert torch.equal(torch.rand(4), expected)


def test_probe_on_a_real_model_step():
    torch.manual_seed(0)
    model = create_model("gpt-char-tiny", n_layer=1, block_size=16)
    x = torch.randint(0, 128, (2, 16))

    def step() -> None:
        model(x).float().logsumexp(-1).mean().backward()

    probe = probe_precision(step, "cpu", seconds=0.3, tokens_per_step=x.numel())
    assert probe.fastest in PRECISIONS and probe.seconds_per_step["fp32"] > 0
    assert all(p.grad is not None for p in model.parameters())


def test_resolve_precision_explicit_values_never_probe():
    def probe() -> str:
        raise AssertionError("probe called for an explicit precision")
    for device in ("cpu", "cuda"):
        for precision in PRECISIONS:
            assert resolve_precision(precision, torch.device(device), probe) == precision


def test_resolve_precision_auto_on_cpu_follows_the_probe():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("auto", cpu, lambda: "bf16") == "bf16"
    assert resolve_precision("auto", cpu, lambda: "fp32") == "fp32"
    assert resolve_precision("auto", torch.device("mps"), lambda: "bf16") == "fp32"  # the probe is for CPUs
    with pytest.raises(ValueError, match="'fp16'"):
        resolve_precision("auto", cpu, lambda: "fp16")


@pytest.mark.parametrize("supported,expected", [(True, "bf16"), (False, "fp32")])
def test_resolve_precision_auto_on_cuda(monkeypatch, supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)

    def probe() -> str:
        raise AssertionError("CUDA decides from the GPU, not from the CPU probe")
    assert resolve_precision("auto", torch.device("cuda"), probe) == expected


def test_cpu_summary_names_the_bf16_flags():
    summary = cpu_summary()
    assert "avx512_bf16" in summary or "flags unknown" in summary
    assert "torch " in summary


def test_probe_of_model_shapes_times_one_block_of_a_meta_model() -> None:
    from fromzero.models import create_model
    from fromzero.train.precision_probe import probe_model_shapes

    with torch.device("meta"):
        gpt = create_model("gpt-char-tiny")
        cnn = create_model("cnn-small")
    probe = probe_model_shapes(gpt, tokens=4 * 64, seconds=0.5)
    assert probe is not None and probe.fastest in ("fp32", "bf16")
    assert probe.seconds_per_step["fp32"] is not None and probe.seconds_per_step["fp32"] > 0
    assert probe.tokens_per_step == 256
    assert next(gpt.parameters()).is_meta  # the model itself is never materialised
    assert probe_model_shapes(cnn, tokens=64) is None  # no Transformer block to time
