"""GPU training MFU: fromzero GPT-2 124M vs nanoGPT on the same GPU, same shapes, same run.

Both models get GPT-2 small's shape (12 layers, 12 heads, 768 wide, context 1024, vocab 50304 padded
as nanoGPT does, dropout 0) and are trained for ``--steps`` steps on random tokens with the settings
a GPU run uses: bf16 autocast, fused AdamW, flash SDPA (PyTorch picks it for bf16 causal attention),
``torch.compile`` (unless ``--no-compile``). Rounds alternate the two models; the median tokens/s
of each and the ratio are reported.

MFU (model FLOPs utilisation, PaLM appendix B, Chowdhery et al. 2022):
    MFU = tokens/s * FLOPs per token (training) / peak FLOP/s
with FLOPs per token = 3 * (2 * matmul weights + 4 * L * T * C), the same count ``fromzero info``
prints (fromzero.train.cost_estimate). Peak: ``--peak-tflops`` or a table of dense bf16 peaks by GPU
name (H100 SXM / H200: 989 TFLOP/s; H100 PCIe: 756; A100: 312). Target for fromzero: >= 45% on an H100.

Run (on a CUDA machine):
  python benchmarks/gpu_mfu.py --nanogpt /path/to/nanoGPT [--batch 16] [--steps 10] [--repeats 3] [--json out.json]
Without a CUDA GPU it exits with status 2 and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from fromzero.models import create_model
from fromzero.train.cost_estimate import cost_estimate
from fromzero.train.optim import OptimConfig, build_optimizer

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0,
                    "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}
VOCAB = 50304  # GPT-2's 50257 padded to a multiple of 64, as nanoGPT trains it


def peak_tflops(name: str, given: float | None) -> float | None:
    """Dense bf16 peak of the GPU called ``name`` (None when unknown and not given)."""
    if given:
        return given
    return next((v for key, v in PEAK_BF16_TFLOPS.items() if key in name), None)


def load_nanogpt(path: str) -> object:
    """Import nanoGPT's model.py from a checkout (or the file itself); never vendored into fromzero."""
    file = Path(path)
    file = file / "model.py" if file.is_dir() else file
    if not file.is_file():
        raise SystemExit(f"error: --nanogpt {path}: no model.py there; clone github.com/karpathy/nanoGPT")
    spec = importlib.util.spec_from_file_location("nanogpt_model", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               logits_of: Callable) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(logits_of(model, x).float().flatten(0, 1), y.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()
    return step


def build_fromzero(compile_model: bool) -> tuple[torch.nn.Module, Callable]:
    model = create_model("gpt2-small", vocab_size=VOCAB, dropout=0.0).cuda().train()
    optimizer = build_optimizer(model, OptimConfig(lr=6e-4, weight_decay=0.1, betas=[0.9, 0.95]))
    compiled = torch.compile(model) if compile_model else model
    return model, train_step(compiled, optimizer, lambda m, x: m(x))


def build_nanogpt(nanogpt: object, compile_model: bool) -> Callable:
    cfg = nanogpt.GPTConfig(block_size=1024, vocab_size=VOCAB, n_layer=12, n_head=12, n_embd=768,
                            dropout=0.0, bias=True)
    model = nanogpt.GPT(cfg).cuda().train()
    optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cuda")  # nanoGPT's own: fused AdamW
    compiled = torch.compile(model) if compile_model else model
    # nanoGPT's forward without targets returns only the last position's logits: pass targets for all.
    return train_step(compiled, optimizer, lambda m, x: m(x, x)[0])


def timed(step: Callable, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nanogpt", help="nanoGPT checkout or its model.py (omit to measure fromzero only)")
    ap.add_argument("--batch", type=int, default=16, help="sequences per step (of 1024 tokens)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="eager mode instead of torch.compile")
    ap.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (default: from its name)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA GPU on this machine: gpu_mfu.py measures GPU training; run it where "
              "`python -c 'import torch; print(torch.cuda.is_available())'` prints True", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name()
    peak = peak_tflops(name, args.peak_tflops)
    model, ours = build_fromzero(not args.no_compile)
    steps = {"fromzero": ours}
    if args.nanogpt:
        steps["nanogpt"] = build_nanogpt(load_nanogpt(args.nanogpt), not args.no_compile)
    n = args.warmup + args.repeats * args.steps
    data = torch.randint(0, VOCAB, (n, args.batch, 1025), device="cuda")
    batches = [(d[:, :-1], d[:, 1:]) for d in data]
    for step in steps.values():
        timed(step, batches[: args.warmup])
    tokens = args.steps * args.batch * 1024
    rates: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(args.repeats):
        chunk = batches[args.warmup + r * args.steps: args.warmup + (r + 1) * args.steps]
        for key in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            rates[key].append(tokens / timed(steps[key], chunk))
    flops = cost_estimate(model.config, seq_len=1024)["flops_per_token"]["training"]
    med = {k: statistics.median(v) for k, v in rates.items()}
    mfu = {k: (v * flops / (peak * 1e12) if peak else None) for k, v in med.items()}
    print(f"GPU: {name}  peak bf16 {peak or 'unknown'} TFLOP/s  torch {torch.__version__}  "
          f"compile {not args.no_compile}  batch {args.batch}x1024")
    for k in steps:
        share = f"MFU {mfu[k]:.1%}" if mfu[k] is not None else "MFU n/a (give --peak-tflops)"
        print(f"  {k:9s} {med[k]:>10,.0f} tokens/s  {share}")
    if "nanogpt" in med:
        print(f"  ratio fromzero/nanogpt: {med['fromzero'] / med['nanogpt']:.3f}")
    print(f"  peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps({"gpu": name, "peak_tflops": peak, "flops_per_token": flops,
                                               "tokens_per_s": rates, "median": med, "mfu": mfu,
                                               "compile": not args.no_compile, "batch": args.batch,
                                               "torch": torch.__version__}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
