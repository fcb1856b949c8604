"""Training throughput: fromzero GPT vs nanoGPT vs Hugging Face GPT2LMHeadModel, fp32 and bf16, in one process.

All models get the same config (gpt-char-6x384: 6 layers, 6 heads, 384 wide, context 256, vocab 65, dropout 0),
the same initial weights (fromzero's, copied into nanoGPT and HF) and the same random token batches. One step =
forward + cross-entropy + backward + AdamW step (no clipping, for every model). fromzero runs its own objective
(CausalLM) and optimizer factory (fused AdamW where torch has it); nanoGPT runs its own ``configure_optimizers``
(fused AdamW on CUDA only); HF gets the same decay split as fromzero. nanoGPT's MLP uses the exact GELU, fromzero
and HF GPT-2's tanh approximation (at this init the first-step losses still agree to ~1e-5).

Rows: fromzero / nanoGPT / HF in fp32, and fromzero / nanoGPT under bf16 autocast. Rounds run every row back to
back in a rotating order, to spread machine noise; medians and per-round ratios are printed. MFU uses nanoGPT's
FLOP count (6 N + 12 L C T per token, N without position embeddings) against two peaks measured in the same run:
the fp32 and bf16 rates of the block's four matmul shapes (batch*context rows). bf16 rows are skipped, with the
reason, where the measured bf16 matmul rate predicts a step over 20x an fp32 step; bf16 rows over 3x slower than
fp32 (an AVX2-only CPU emulates bf16: ~10x slower steps) are timed on one step only, so the run stays short.

Run:  .venv/bin/python benchmarks/train_throughput.py --nanogpt /path/to/nanoGPT [--repeats 3] [--steps 3]
      [--warmup 2] [--threads 2] [--fp32-only] [--json out.json]
--nanogpt takes a nanoGPT checkout (github.com/karpathy/nanoGPT) or its model.py; without it nanoGPT is skipped.
Needs the dev extra (transformers).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

from fromzero.models import create_model
from fromzero.objectives.causal_lm import CausalLM
from fromzero.train.optim import OptimConfig, adam_implementation, build_optimizer
from fromzero.train.precision import autocast
from fromzero.train.precision_probe import cpu_summary

LR, WD, BETAS, EPS = 6e-4, 0.1, (0.9, 0.95), 1e-8
BF16_LIMIT = 20.0  # run no bf16 step when the bf16 matmul rate predicts one over this many fp32 steps
SLOW_BF16 = 3.0  # bf16 steps slower than this many fp32 steps are timed once, not in every round


def load_nanogpt(path: str | None) -> tuple[object | None, str]:
    """nanoGPT's model module imported from a checkout or its model.py, or (None, why not)."""
    if not path:
        return None, "no --nanogpt PATH given (a nanoGPT checkout or its model.py)"
    file = Path(path) / "model.py" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        return None, f"{file} does not exist"
    spec = importlib.util.spec_from_file_location("nanogpt_model", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, str(file)


def build_nanogpt(nanogpt, ours: torch.nn.Module) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """nanoGPT's GPT with ours' shape and weights (both store linear weights as (out, in)), and its optimizer."""
    c = ours.config
    cfg = nanogpt.GPTConfig(block_size=c.block_size, vocab_size=c.vocab_size, n_layer=c.n_layer, n_head=c.n_head,
                            n_embd=c.n_embd, dropout=0.0, bias=c.bias)
    with contextlib.redirect_stdout(io.StringIO()):  # nanoGPT prints parameter counts
        model = nanogpt.GPT(cfg)
        optimizer = model.configure_optimizers(WD, LR, BETAS, "cpu")
    t = model.transformer
    with torch.no_grad():
        t.wte.weight.copy_(ours.tok_emb.weight)  # tied to nanoGPT's lm_head
        t.wpe.weight.copy_(ours.pos_emb.weight)
        for blk, h in zip(ours.blocks, t.h, strict=True):
            for a, b in [(blk.attn.qkv, h.attn.c_attn), (blk.attn.proj, h.attn.c_proj),
                         (blk.mlp.fc, h.mlp.c_fc), (blk.mlp.proj, h.mlp.c_proj),
                         (blk.norm1, h.ln_1), (blk.norm2, h.ln_2)]:
                b.weight.copy_(a.weight)
                b.bias.copy_(a.bias)
        t.ln_f.weight.copy_(ours.norm_f.weight)
        t.ln_f.bias.copy_(ours.norm_f.bias)
    return model.train(), optimizer


def build_hf(ours: torch.nn.Module) -> torch.nn.Module:
    """GPT2LMHeadModel with ours' shape and weights (GPT-2's Conv1D weights are (in, out))."""
    c = ours.config
    cfg = transformers.GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd,
                                  n_layer=c.n_layer, n_head=c.n_head, activation_function="gelu_new",
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=c.norm_eps,
                                  tie_word_embeddings=True, use_cache=False, bos_token_id=None, eos_token_id=None)
    hf = transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="sdpa")
    t = hf.transformer
    with torch.no_grad():
        t.wte.weight.copy_(ours.tok_emb.weight)
        t.wpe.weight.copy_(ours.pos_emb.weight)
        for blk, h in zip(ours.blocks, t.h, strict=True):
            for lin, conv in [(blk.attn.qkv, h.attn.c_attn), (blk.attn.proj, h.attn.c_proj),
                              (blk.mlp.fc, h.mlp.c_fc), (blk.mlp.proj, h.mlp.c_proj)]:
                conv.weight.copy_(lin.weight.T)
                conv.bias.copy_(lin.bias)
            for norm, ln in [(blk.norm1, h.ln_1), (blk.norm2, h.ln_2)]:
                ln.weight.copy_(norm.weight)
                ln.bias.copy_(norm.bias)
        t.ln_f.weight.copy_(ours.norm_f.weight)
        t.ln_f.bias.copy_(ours.norm_f.bias)
    assert hf.lm_head.weight is t.wte.weight, "HF head should be tied to wte"
    return hf.train()


def hf_optimizer(hf: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW with fromzero's split (decay the matrices of Conv1D layers only), torch's default kernel."""
    decay, no_decay = [], []
    for name, p in hf.named_parameters():  # deduplicated: the tied head appears once, as wte
        is_matrix = p.dim() == 2 and not name.startswith(("transformer.wte", "transformer.wpe"))
        (decay if is_matrix else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS)


def make_step(loss_of, optimizer, precision: str):
    """step(x, y) -> loss: forward and loss under ``precision``, backward, optimizer step."""
    device = torch.device("cpu")

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with autocast(precision, device):
            loss = loss_of(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def build_steps(ours, nanogpt) -> tuple[dict, dict]:
    """The fp32 steps and the bf16 steps, by row name, over shared models and optimizers."""
    objective = CausalLM()
    ours_opt = build_optimizer(ours, OptimConfig(lr=LR, weight_decay=WD, betas=list(BETAS), eps=EPS))
    hf = build_hf(ours)
    losses = {"fromzero": lambda x, y: objective(ours, {"input_ids": x, "labels": y}).loss,
              "hf": lambda x, y: F.cross_entropy(hf(x).logits.flatten(0, 1), y.flatten())}
    optimizers = {"fromzero": ours_opt, "hf": hf_optimizer(hf)}
    if nanogpt is not None:
        ng_model, optimizers["nanogpt"] = build_nanogpt(nanogpt, ours)
        losses["nanogpt"] = lambda x, y: ng_model(x, y)[1]
    fp32 = {f"{n} fp32": make_step(losses[n], optimizers[n], "fp32") for n in ("fromzero", "nanogpt", "hf")
            if n in losses}
    bf16 = {f"{n} bf16": make_step(losses[n], optimizers[n], "bf16") for n in ("fromzero", "nanogpt")
            if n in losses}
    return fp32, bf16


def matmul_rates(c, rows: int, dtype: torch.dtype, fp32_rate: float | None = None) -> tuple[float, dict]:
    """GFLOP/s of the block's matmul shapes (rows x in @ in x out) in ``dtype``: (aggregate, per shape).

    Aggregate = all FLOPs / all best times. Given ``fp32_rate``, stops after the first (smallest) shape when
    that runs under 1/20 of it: bf16 emulation, whose full measurement would take a minute.
    """
    shapes = [(c.n_embd, c.n_embd), (c.n_embd, 3 * c.n_embd), (c.n_embd, 4 * c.n_embd), (4 * c.n_embd, c.n_embd)]
    per_shape, flops, seconds = {}, 0.0, 0.0
    for k, n in shapes:
        a, w = torch.randn(rows, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
        F.linear(a, w)  # warm-up
        times, start = [], time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < 0.2 and len(times) < 20):
            t0 = time.perf_counter()
            F.linear(a, w)
            times.append(time.perf_counter() - t0)
        rate = 2 * rows * k * n / min(times) / 1e9
        per_shape[f"{rows}x{k}x{n}"] = rate
        flops, seconds = flops + 2 * rows * k * n, seconds + min(times)
        if fp32_rate is not None and rate < fp32_rate / BF16_LIMIT:
            break
    return flops / seconds / 1e9, per_shape


def measure_peaks(c, rows: int, earlier: tuple[dict, dict] | None = None, bf16: bool = True) -> tuple[dict, dict]:
    """fp32 and bf16 peaks (and per-shape rates); with ``earlier``, the higher of both measurements (a rate
    measured while the machine was busy only underestimates the peak). Without ``bf16`` its peak is NaN."""
    peaks, shapes = {}, {}
    peaks["fp32"], shapes["fp32"] = matmul_rates(c, rows, torch.float32)
    peaks["bf16"], shapes["bf16"] = matmul_rates(c, rows, torch.bfloat16, peaks["fp32"]) if bf16 else (math.nan, {})
    if earlier is not None:
        for dtype in peaks:
            if earlier[0][dtype] > peaks[dtype] or math.isnan(peaks[dtype]):
                peaks[dtype], shapes[dtype] = earlier[0][dtype], earlier[1][dtype]
    print(f"peak{' (best of 2)' if earlier else ''} (block matmul shapes, {rows} rows): fp32 "
          f"{peaks['fp32']:,.1f} GFLOP/s, bf16 {peaks['bf16']:,.1f} GFLOP/s ({peaks['bf16'] / peaks['fp32']:.2f}x)")
    return peaks, shapes


def flops_per_token(model: torch.nn.Module) -> float:
    """nanoGPT's estimate_mfu count: 6 N + 12 L C T, N = parameters without position embeddings."""
    c = model.config
    n = sum(p.numel() for p in model.parameters()) - model.pos_emb.weight.numel()
    return 6 * n + 12 * c.n_layer * c.n_embd * c.block_size


def time_steps(step, batches) -> float:
    """Seconds for one step per batch."""
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return time.perf_counter() - start


def bf16_single_steps(bf16_steps: dict, batch, fp32_step_s: float, step_flops: float,
                      bf16_rate: float) -> tuple[dict[str, float], str | None]:
    """Seconds of one step of each bf16 row (its warm-up), and why the rows stay out of the rounds (None: they
    join them). Nothing runs when the bf16 matmul rate predicts a step over BF16_LIMIT fp32 steps; rows slower
    than SLOW_BF16 fp32 steps are reported from that one step, since they cannot pay and take long."""
    predicted = step_flops / (bf16_rate * 1e9)
    if predicted > BF16_LIMIT * fp32_step_s:
        return {}, (f"one bf16 step would take >= {predicted:.0f} s (bf16 matmuls at {bf16_rate:.1f} GFLOP/s) vs "
                    f"{fp32_step_s:.2f} s in fp32: no native bf16 on this CPU")
    took = {name: time_steps(step, [batch]) for name, step in bf16_steps.items()}
    slowest = max(took.values())
    if slowest > SLOW_BF16 * fp32_step_s:
        return took, (f"a bf16 step takes {slowest:.1f} s, {slowest / fp32_step_s:.1f}x the fp32 step: bf16 rows "
                      "below come from one step each, not from the rounds")
    return took, None


def run_rounds(steps: dict, batches, args, tokens: int) -> dict[str, list[float]]:
    """tokens/s of every row per round; each round starts one row later than the previous one."""
    rates: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(args.repeats):
        chunk = batches[args.warmup + r * args.steps: args.warmup + (r + 1) * args.steps]
        for name in names[r % len(names):] + names[: r % len(names)]:
            rates[name].append(tokens / time_steps(steps[name], chunk))
        print(f"round {r + 1}: " + "  ".join(f"{n} {v[-1]:,.0f}" for n, v in rates.items()) + " tok/s", flush=True)
    return rates


def summarize(rates: dict, peaks: dict, step_flops_per_token: float) -> dict:
    """Medians, paired ratios (median of per-round ratios) and MFU against both peaks; printed and returned."""
    med = {name: statistics.median(v) for name, v in rates.items()}
    pairs = [("fromzero fp32", "nanogpt fp32"), ("fromzero fp32", "hf fp32"), ("fromzero bf16", "nanogpt fp32"),
             ("fromzero bf16", "fromzero fp32"), ("nanogpt bf16", "nanogpt fp32")]
    ratios = {f"{a} / {b}": statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))
              for a, b in pairs if a in rates and b in rates}
    mfu = {name: {p: m * step_flops_per_token / (peaks[p] * 1e9) for p in peaks} for name, m in med.items()}
    print(f"\n{'row':16s} {'median tok/s':>13s} {'MFU vs fp32 peak':>17s} {'MFU vs bf16 peak':>17s}")
    for name, m in med.items():
        print(f"{name:16s} {m:13,.0f} {mfu[name]['fp32']:17.1%} {mfu[name]['bf16']:17.1%}")
    for k, v in ratios.items():
        print(f"ratio {k}: {v:.3f}")
    return {"median_tokens_per_s": med, "ratios": ratios, "mfu": mfu}


def json_safe(value):
    """``value`` with NaN (a peak not measured) as null, so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nanogpt", help="a nanoGPT checkout or its model.py (skipped without it)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds")
    ap.add_argument("--steps", type=int, default=3, help="training steps per row per round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per fp32 row first")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp32-only", action="store_true", help="skip the bf16 rows (and the bf16 peak)")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nanogpt, where = load_nanogpt(args.nanogpt)
    print(f"cpu: {cpu_summary()}\ntorch {torch.__version__}, transformers {transformers.__version__}, "
          f"{args.threads} threads")
    print(f"nanoGPT: {where}" if nanogpt else f"nanoGPT skipped: {where}")
    ours = create_model("gpt-char-6x384", dropout=0.0).train()
    c = ours.config
    print(f"fromzero AdamW kernel: {adam_implementation(ours.parameters()) or 'per-tensor loop'}")
    fp32, bf16 = build_steps(ours, nanogpt)
    data = torch.randint(0, c.vocab_size, (args.warmup + args.repeats * args.steps, args.batch, c.block_size + 1))
    batches = [(d[:, :-1].contiguous(), d[:, 1:].contiguous()) for d in data]
    first = {name: step(*batches[0]) for name, step in fp32.items()}  # identical weights and batch
    print("first-step loss (same weights, same batch): " + "  ".join(f"{n} {v:.5f}" for n, v in first.items()))
    warm = {name: min(time_steps(step, [b]) for b in batches[1: max(args.warmup, 2)]) for name, step in fp32.items()}
    peaks, shapes = measure_peaks(c, args.batch * c.block_size, bf16=not args.fp32_only)
    per_token = flops_per_token(ours)
    tokens = args.steps * args.batch * c.block_size
    single, skip = ({}, "--fp32-only") if args.fp32_only else bf16_single_steps(
        bf16, batches[0], warm["fromzero fp32"], per_token * args.batch * c.block_size, peaks["bf16"])
    print(f"bf16: {skip}" if skip else "bf16 rows: timed in the rounds")
    rates = run_rounds({**fp32, **({} if skip else bf16)}, batches, args, tokens)
    if skip and single:  # one step each, repeated so the ratios pair it with every round
        rates.update({name: [args.batch * c.block_size / s] * args.repeats for name, s in single.items()})
    peaks, shapes = measure_peaks(c, args.batch * c.block_size, (peaks, shapes), bf16=not args.fp32_only)
    summary = summarize(rates, peaks, per_token)
    if args.json:
        result = {"config": {"model": "gpt-char-6x384", "n_layer": c.n_layer, "n_head": c.n_head,
                             "n_embd": c.n_embd, "block_size": c.block_size, "vocab_size": c.vocab_size,
                             "batch": args.batch, "threads": args.threads, "steps_per_round": args.steps,
                             "repeats": args.repeats},
                  "cpu": cpu_summary(), "torch": torch.__version__, "transformers": transformers.__version__,
                  "nanogpt": where if nanogpt else f"skipped: {where}", "bf16_note": skip, "bf16_single_step_s": single,
                  "first_step_loss": first,
                  "peak_gflops": peaks, "peak_gflops_per_shape": shapes, "flops_per_token": per_token,
                  "tokens_per_s": rates, **summary}
        Path(args.json).write_text(json.dumps(json_safe(result), indent=2))


if __name__ == "__main__":
    sys.exit(main())
