"""Which precision trains a given model fastest on this machine: a bounded timing probe.

bf16 autocast pays only where the hardware multiplies bf16 natively (CUDA GPUs, CPUs with AMX or
AVX512_BF16), and even there not for every shape: small matrices spend their time outside the
matmuls (on a 4-layer, 128-wide model bf16 was measured slower than fp32 on an AMX CPU). So the
answer is measured per model and batch shape, by timing the caller's own training step.

The probe never spends much more than ``seconds``, even where bf16 is emulated (an AVX2-only CPU
multiplies bf16 ~100x slower than fp32, so one bf16 step of a mid-sized model can take minutes):

1. a 256x256x256 matmul in fp32 and in bf16 (milliseconds); if bf16 is over
   ``EMULATED_SLOWDOWN`` times slower, bf16 cannot win and its step is never run;
2. one warm-up step in each precision, then alternate steps while the budget lasts (the best
   step of each counts; the warm-ups too if nothing else fits);
3. a bf16 step running past max(the remaining budget, 2x the fp32 step) is abandoned through a
   SIGALRM watchdog (main thread on POSIX; elsewhere step 1 is the only guard).

One fp32 step always runs, so the bound is ~max(``seconds``, 3 fp32 steps). The RNG state is
restored afterwards, so the probe does not shift the run's dropout or sampling.
"""

from __future__ import annotations

import contextlib
import copy
import platform
import signal
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fromzero.train.precision import autocast

PRECISIONS = ("fp32", "bf16")
EMULATED_SLOWDOWN = 2.0  # bf16 matmul this many times slower than fp32: no native bf16, skip it
MARGIN = 0.05  # bf16 must be this much faster to be chosen: fp32 is the numerically safer default
MAX_ROUNDS = 5  # timed rounds per precision at most, so a fast model does not loop for the whole budget
_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
_CACHE: dict[tuple[str, Hashable], PrecisionProbe] = {}


@dataclass(frozen=True)
class PrecisionProbe:
    """What the probe measured: the fastest precision and the seconds per step of each one."""

    fastest: str  # "fp32" or "bf16"
    seconds_per_step: dict[str, float | None]  # None: that precision was not timed (see ``reason``)
    cpu: str  # model name and the bf16-relevant flags (see cpu_summary)
    reason: str  # one line: why ``fastest`` won
    tokens_per_step: int | None = None
    matmul_slowdown: float | None = field(default=None)  # bf16 / fp32 time of the small matmul

    @property
    def tokens_per_s(self) -> dict[str, float | None]:
        """Tokens per second per precision (None without ``tokens_per_step`` or a timing)."""
        return {p: (self.tokens_per_step / s if self.tokens_per_step and s else None)
                for p, s in self.seconds_per_step.items()}

    def summary(self) -> str:
        """One line for users, e.g. ``fastest: fp32 (bf16 matmul 95x slower: emulated) on AMD EPYC [...]``."""
        return f"fastest: {self.fastest} ({self.reason}) on {self.cpu}"


def cpu_summary() -> str:
    """``"<model name> [avx2 yes, avx512f no, avx512_bf16 no, amx_bf16 no; torch AVX2]"`` (Linux reads
    /proc/cpuinfo, as lscpu does; elsewhere the flags are unknown)."""
    info: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())  # the first CPU's lines
    name = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    listed = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in _CPU_FLAGS) if flags else "flags unknown"
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "?")()
    return f"{name} [{listed}; torch {capability}]"


class _Overrun(Exception):
    """Raised inside a step that ran past its time limit."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise _Overrun in the main thread after ``seconds`` (POSIX); elsewhere a no-op."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        signal.signal(signal.SIGALRM, old_handler)  # first: the raise may land anywhere, even in `finally`
        raise _Overrun

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    start = time.perf_counter()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:  # someone else's alarm (e.g. a test timeout): re-arm what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.perf_counter() - start), 1e-3),
                             old_interval)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: Callable[[], None], precision: str, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    with autocast(precision, device):
        step()
    _sync(device)
    return time.perf_counter() - start


def matmul_slowdown(device: torch.device, n: int = 256) -> float:
    """Seconds of an n x n x n bf16 matmul over the fp32 one (best of a few): ~100 where bf16 is emulated."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        times = []
        for _ in range(10 if dtype is torch.float32 else 3):
            _sync(device)
            start = time.perf_counter()
            x @ y
            _sync(device)
            times.append(time.perf_counter() - start)
            if dtype is torch.bfloat16 and times[-1] > EMULATED_SLOWDOWN * 10 * best[torch.float32]:
                break  # clearly emulated: one slow multiply says enough
        best[dtype] = min(times)
    return best[torch.bfloat16] / max(best[torch.float32], 1e-9)


def _bf16_available(device: torch.device) -> str | None:
    """None if bf16 autocast can run on ``device``, else why not."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16"
    if device.type not in ("cpu", "cuda"):
        return f"bf16 autocast is not probed on {device.type}"
    return None


def _bf16_step(step: Callable[[], None], device: torch.device, limit: float) -> float | None:
    """Seconds of one step under bf16 autocast, or None if it ran past ``limit`` and was abandoned."""
    try:
        with _time_limit(limit):
            return _timed(step, "bf16", device)
    except _Overrun:
        return None


def _measure(step: Callable[[], None], device: torch.device, seconds: float) -> tuple[dict, str, float | None]:
    """Best seconds per step of each precision (bf16: None if not timed), why not (or ""), matmul ratio."""
    deadline = time.perf_counter() + seconds
    skip, slowdown = _bf16_available(device), None
    if skip is None:
        slowdown = matmul_slowdown(device)
        if slowdown > EMULATED_SLOWDOWN:
            skip = f"bf16 matmul {slowdown:.0f}x slower than fp32 here: no native bf16, step not run"
    # warm-ups (first calls pay for allocations and kernel setup) count as samples when time runs out
    times: dict[str, list[float]] = {"fp32": [_timed(step, "fp32", device)], "bf16": []}
    if skip is None:
        took = _bf16_step(step, device, max(deadline - time.perf_counter(), 2 * times["fp32"][0]))
        if took is None:
            skip = f"one bf16 step took over max(the budget, 2x the fp32 step = {2 * times['fp32'][0]:.2f} s)"
        else:
            times["bf16"].append(took)
    order = ["fp32"] if skip else ["fp32", "bf16"]
    for round_ in range(1 if skip else MAX_ROUNDS):  # fp32 alone: one timed step gives its speed
        if time.perf_counter() + sum(times[p][-1] for p in order) > deadline:
            break
        for precision in order if round_ % 2 == 0 else order[::-1]:  # alternate to spread machine noise
            if precision == "fp32":
                times["fp32"].append(_timed(step, "fp32", device))
                continue
            took = _bf16_step(step, device, max(deadline - time.perf_counter(), 2 * min(times["fp32"])))
            if took is None:
                skip, order = f"a bf16 step ran past the {seconds:.1f} s budget", ["fp32"]
                break
            times["bf16"].append(took)
    best = {p: min(times[p]) if times[p] else None for p in PRECISIONS}
    if skip:
        best["bf16"] = None
    return best, skip, slowdown


def probe_precision(step: Callable[[], None], device: torch.device | str, *, seconds: float = 2.0,
                    key: Hashable | None = None, tokens_per_step: int | None = None) -> PrecisionProbe:
    """Time ``step`` (one forward + backward; the caller zeroes gradients afterwards) in fp32 and under
    bf16 autocast for about ``seconds`` and return the faster, with the timings.

    ``key`` (e.g. the model config and batch shape) caches the answer for this process: a second call
    with the same device and key returns the first probe without running anything.
    """
    device = torch.device(device)
    if key is not None and (str(device), key) in _CACHE:
        return _CACHE[(str(device), key)]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        best, skip, slowdown = _measure(step, device, seconds)
    fp32, bf16 = best["fp32"], best["bf16"]
    if bf16 is None:
        fastest, reason = "fp32", skip
    elif bf16 < fp32 * (1 - MARGIN):
        fastest, reason = "bf16", f"bf16 autocast {fp32 / bf16:.2f}x the fp32 speed"
    else:
        fastest, reason = "fp32", f"bf16 autocast only {fp32 / bf16:.2f}x the fp32 speed"
    result = PrecisionProbe(fastest, best, cpu_summary() if device.type == "cpu" else _gpu_name(device),
                            reason, tokens_per_step, slowdown)
    if key is not None:
        _CACHE[(str(device), key)] = result
    return result


def _gpu_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def probe_model_shapes(model: torch.nn.Module, tokens: int, *, seconds: float = 2.0,
                       max_tokens: int = 2048) -> PrecisionProbe | None:
    """Probe the precision of ``model``'s shapes without training (or even allocating) the whole model.

    ``model`` may live on the meta device (``fromzero info`` builds it there): the first Transformer
    block without cross-attention is copied, given real random weights on the CPU and timed forward +
    backward on ``min(tokens, max_tokens)`` tokens of the model's width, the matmul shapes that
    dominate a training step. Returns None for a model without Transformer blocks.
    """
    from fromzero.nn import Block

    block = next((m for m in model.modules() if isinstance(m, Block) and m.cross_attn is None), None)
    if block is None:
        return None
    block = copy.deepcopy(block).to_empty(device="cpu")
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.02)
    width = next(m for m in block.modules() if isinstance(m, torch.nn.Linear)).in_features
    n = max(1, min(tokens, max_tokens))
    seq = min(n, 256)
    x = torch.randn(max(1, n // seq), seq, width)

    def step() -> None:
        block(x).float().square().mean().backward()
        block.zero_grad(set_to_none=True)

    key = ("block", tuple((k, tuple(v.shape)) for k, v in block.state_dict().items()), tuple(x.shape))
    return probe_precision(step, "cpu", seconds=seconds, key=key, tokens_per_step=x.shape[0] * seq)
