"""Generation throughput: fromzero GPT vs Hugging Face GPT2LMHeadModel ``generate``, same weights, same process.

Both models share one config (6 layers, 6 heads, n_embd 384, context 256,
vocab 65, dropout 0) and fromzero's random-init weights, copied into the
Hugging Face model. Cases (each 200 new tokens, KV cache on both sides):

  b1         batch 1, a 16-token prompt, greedy (the headline)
  b1-sample  batch 1, top-k 50 + top-p 0.9 sampling (speed vs greedy: the issue asks within 10%)
  b8         batch 8, eight 16-token prompts, greedy
  b8-padded  batch 8, prompts of 3..16 tokens (fromzero: right-padded prefill and per-row positions;
             Hugging Face: left padding with an attention mask), greedy
  b8-sample  batch 8, 16-token prompts, top-k 50 + top-p 0.9

Greedy cases first check that both sides produce the same tokens, row by row
(the sanity check that the weight copy and padding are right; it doubles as
the warm-up). Then ``--repeats`` timed runs alternate the two sides; the
median tokens/s (new tokens x batch over the whole call, prefill included) is
reported with every run. fp32 is the headline; ``--dtype bf16|fp16`` runs both
sides with weights in that dtype (on CPUs without native half matmuls the
prefill is emulated: measure, do not assume). ``--compile`` uses fromzero's
compiled decode step (its compile time is printed; the runs are after it).

Run:  .venv/bin/python benchmarks/generate_throughput.py [--repeats 5] [--threads 2] [--cases b1,b8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from fromzero.generation import DecodeOptions, SamplingConfig, generate_tokens
from fromzero.models import GPT, create_model

NEW_TOKENS = 200
CASES = {  # name: (prompt lengths, sampling)
    "b1": ([16], False), "b1-sample": ([16], True), "b8": ([16] * 8, False),
    "b8-padded": ([16, 5, 12, 3, 16, 9, 14, 7], False), "b8-sample": ([16] * 8, True),
}
TOP_K, TOP_P = 50, 0.9
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def hf_twin(model: GPT) -> GPT2LMHeadModel:
    """A GPT2LMHeadModel with ``model``'s config and weights (Conv1D weights are Linear weights transposed)."""
    c = model.config
    hf_cfg = GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                        n_head=c.n_head, activation_function="gelu_new", layer_norm_epsilon=c.norm_eps,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
                        attn_implementation="sdpa")  # HF's fastest attention; fromzero also uses SDPA
    hf = GPT2LMHeadModel(hf_cfg).eval()
    ours = model.state_dict()
    names = {"tok_emb.weight": "wte.weight", "pos_emb.weight": "wpe.weight",
             "norm_f.weight": "ln_f.weight", "norm_f.bias": "ln_f.bias"}
    per_block = {"norm1": "ln_1", "norm2": "ln_2", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj",
                 "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}
    for i in range(c.n_layer):
        for src, dst in per_block.items():
            for kind in ("weight", "bias"):
                names[f"blocks.{i}.{src}.{kind}"] = f"h.{i}.{dst}.{kind}"
    state = {}
    for src, dst in names.items():
        w = ours[src]
        is_conv1d = any(k in dst for k in ("c_attn", "c_proj", "c_fc")) and dst.endswith("weight")
        state["transformer." + dst] = w.t() if is_conv1d else w
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    hf.tie_weights()
    return hf


def sampling(sample: bool) -> SamplingConfig:
    if sample:
        return SamplingConfig(max_new_tokens=NEW_TOKENS, temperature=1.0, top_k=TOP_K, top_p=TOP_P, seed=0)
    return SamplingConfig(max_new_tokens=NEW_TOKENS, greedy=True)


def run_fromzero(model: GPT, prompts: list[list[int]], sample: bool, options: DecodeOptions) -> list[list[int]]:
    steps = list(generate_tokens(model, prompts, sampling(sample), options=options))
    return [[t for t in row if t is not None] for row in zip(*steps, strict=True)]


def run_hf(model: GPT2LMHeadModel, prompts: list[list[int]], sample: bool) -> list[list[int]]:
    width = max(len(p) for p in prompts)  # left padding, as Hugging Face decoder-only generation expects
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    kw = {"do_sample": True, "top_k": TOP_K, "top_p": TOP_P, "temperature": 1.0} if sample else {"do_sample": False}
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=mask, use_cache=True, max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, pad_token_id=0, **kw)
    return out[:, width:].tolist()


def timed(fn: Callable[[], list[list[int]]], rows: int) -> float:
    """New tokens per second of one call (all rows)."""
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    assert all(len(r) == NEW_TOKENS for r in out), [len(r) for r in out]
    return rows * NEW_TOKENS / elapsed


def cpu_summary() -> str:
    """CPU model name and the flags that decide which matmul kernels run (read from /proc/cpuinfo, as lscpu)."""
    info: dict[str, str] = {}
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    flags = set(info.get("flags", "").split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16")
    listed = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in wanted) if flags else "flags unknown"
    return f"{info.get('model name', 'unknown CPU')} [{listed}; torch {torch.backends.cpu.get_cpu_capability()}]"


def measure(case: str, ours: GPT, hf: GPT2LMHeadModel, options: DecodeOptions, repeats: int) -> dict:
    lengths, sample = CASES[case]
    gen = torch.Generator().manual_seed(len(lengths))
    prompts = [torch.randint(0, ours.config.vocab_size, (n,), generator=gen).tolist() for n in lengths]
    a, b = run_fromzero(ours, prompts, sample, options), run_hf(hf, prompts, sample)  # warm-up
    same = None if sample else a == b
    assert same is not False, f"{case}: fromzero and Hugging Face greedy tokens differ (weights or padding wrong)"
    rates: dict[str, list[float]] = {"fromzero": [], "hf": []}
    for _ in range(repeats):  # alternate so drift and noise hit both alike
        rates["fromzero"].append(timed(lambda: run_fromzero(ours, prompts, sample, options), len(prompts)))
        rates["hf"].append(timed(lambda: run_hf(hf, prompts, sample), len(prompts)))
    median = {name: statistics.median(r) for name, r in rates.items()}
    return {"batch": len(prompts), "prompt_lengths": lengths, "sampling": sample, "same_tokens": same,
            "tokens_per_s": rates, "median_tokens_per_s": median, "ratio": median["fromzero"] / median["hf"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per implementation and case")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="weights of both models")
    parser.add_argument("--compile", action="store_true", help="fromzero's torch.compile'd decode step")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    args = parser.parse_args()
    cases = args.cases.split(",")
    if unknown := [c for c in cases if c not in CASES]:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = create_model("gpt-char-6x384", dropout=0.0).eval()
    hf = hf_twin(ours).to(DTYPES[args.dtype])
    ours = ours.to(DTYPES[args.dtype])
    options = DecodeOptions(compile=args.compile)
    load_before = os.getloadavg()[0]
    print(f"{NEW_TOKENS} new tokens per row, {args.dtype}, {args.threads} threads, {args.repeats} repeats, "
          f"compile {'on' if args.compile else 'off'} (torch {torch.__version__})\nCPU: {cpu_summary()}")
    if args.compile:
        start = time.perf_counter()
        run_fromzero(ours, [[1] * 16], False, options)
        print(f"  compile + first generation: {time.perf_counter() - start:.1f} s")
    results = {}
    for case in cases:
        r = results[case] = measure(case, ours, hf, options, args.repeats)
        m = r["median_tokens_per_s"]
        check = "" if r["same_tokens"] is None else ", same greedy tokens as HF"
        print(f"{case:10s} fromzero {m['fromzero']:7.1f} tok/s  hf {m['hf']:7.1f} tok/s  "
              f"ratio {r['ratio']:.2f}x{check}")
        print(f"{'':10s} runs fromzero {', '.join(f'{x:.0f}' for x in r['tokens_per_s']['fromzero'])}; "
              f"hf {', '.join(f'{x:.0f}' for x in r['tokens_per_s']['hf'])}")
    for batch in ("b1", "b8"):  # sampling vs greedy, each side against itself
        if batch in results and f"{batch}-sample" in results:
            g, s = results[batch]["median_tokens_per_s"], results[f"{batch}-sample"]["median_tokens_per_s"]
            print(f"{batch} sampling/greedy: fromzero {s['fromzero'] / g['fromzero']:.2f}, hf {s['hf'] / g['hf']:.2f}")
    load = os.getloadavg()[0]  # other processes on the machine make small-thread timings very noisy
    print(f"1-minute load average: {load_before:.1f} before, {load:.1f} after, on {os.cpu_count()} cores")
    if args.json:
        result = {"config": {"new_tokens": NEW_TOKENS, "threads": args.threads, "repeats": args.repeats,
                             "dtype": args.dtype, "compile": args.compile, "torch": torch.__version__,
                             "cpu": cpu_summary(), "load_average": [load_before, load]}, "cases": results}
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
