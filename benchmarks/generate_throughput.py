"""Greedy generation throughput: fromzero GPT vs Hugging Face GPT2LMHeadModel, same weights, same process.

Both models share one config (6 layers, 6 heads, n_embd 384, context 256,
vocab 65, dropout 0, fp32) and fromzero's random-init weights, copied into the
Hugging Face model; a sanity check asserts both produce the same greedy
tokens. Measured: batch 1, a 16-token prompt, 200 new tokens, KV cache on
both sides, one warm-up each, then ``--repeats`` runs alternating the two.
Tokens/s counts new tokens over the whole call (prefill included).

Run:  .venv/bin/python benchmarks/generate_throughput.py [--repeats 5] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from fromzero.generation import SamplingConfig, generate_tokens
from fromzero.models import GPT, create_model

PROMPT_LEN, NEW_TOKENS = 16, 200


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


def run_fromzero(model: GPT, prompt: torch.Tensor) -> list[int]:
    cfg = SamplingConfig(max_new_tokens=NEW_TOKENS, greedy=True)
    return [step[0] for step in generate_tokens(model, [prompt[0].tolist()], cfg)]


def run_hf(model: GPT2LMHeadModel, prompt: torch.Tensor) -> list[int]:
    with torch.inference_mode():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, use_cache=True,
                             max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, pad_token_id=0)
    return out[0, prompt.shape[1]:].tolist()


def timed(fn: Callable[[], list[int]]) -> float:
    """Tokens per second of one call."""
    start = time.perf_counter()
    tokens = fn()
    elapsed = time.perf_counter() - start
    assert len(tokens) == NEW_TOKENS, len(tokens)
    return NEW_TOKENS / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per implementation")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ours = create_model("gpt-char-6x384", dropout=0.0).eval()
    hf = hf_twin(ours)
    prompt = torch.randint(0, ours.config.vocab_size, (1, PROMPT_LEN))

    # Sanity check (doubles as warm-up): identical weights must give identical greedy tokens.
    same = run_fromzero(ours, prompt) == run_hf(hf, prompt)
    assert same, "fromzero and Hugging Face greedy tokens differ: the weight copy is wrong"

    rates: dict[str, list[float]] = {"fromzero": [], "hf": []}
    for _ in range(args.repeats):  # alternate so drift and noise hit both alike
        rates["fromzero"].append(timed(lambda: run_fromzero(ours, prompt)))
        rates["hf"].append(timed(lambda: run_hf(hf, prompt)))

    median = {name: statistics.median(r) for name, r in rates.items()}
    ratio = median["fromzero"] / median["hf"]
    print(f"batch 1, prompt {PROMPT_LEN}, {NEW_TOKENS} new tokens, greedy, {args.threads} threads, "
          f"{args.repeats} repeats (torch {torch.__version__})")
    for name, r in rates.items():
        print(f"  {name:9s} median {median[name]:7.1f} tok/s   runs: {', '.join(f'{x:.1f}' for x in r)}")
    print(f"  ratio fromzero/hf: {ratio:.2f}x")
    load = os.getloadavg()[0]  # other processes on the machine make 2-thread timings very noisy
    print(f"  1-minute load average during the run: {load:.1f} on {os.cpu_count()} cores")
    if args.json:
        result = {"config": {"batch": 1, "prompt_len": PROMPT_LEN, "new_tokens": NEW_TOKENS,
                             "threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
                             "load_average": load},
                  "tokens_per_s": rates, "median_tokens_per_s": median, "ratio": ratio, "same_tokens": same}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
