"""Training throughput: fromzero GPT vs Hugging Face GPT2LMHeadModel, side by side in one process.

Both models get the same config (6 layers, 6 heads, 384 wide, context 256, vocab 65, batch 8, dropout 0,
fp32), the same initial weights (copied from ours into HF) and the same random token batches. One step =
forward + cross-entropy + backward + AdamW step. Rounds alternate the two models to spread machine noise;
the median tokens/s of each and the ratio fromzero/HF (median of per-round ratios) are printed.

Run:  .venv/bin/python benchmarks/train_throughput.py [--repeats 5] [--steps 5] [--warmup 3] [--json out.json]
Needs the dev extra (transformers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
import transformers

from fromzero.models import create_model
from fromzero.train.optim import OptimConfig, build_optimizer

LR, WD, BETAS, EPS = 6e-4, 0.1, (0.9, 0.95), 1e-8


def build_hf(ours: torch.nn.Module) -> torch.nn.Module:
    """GPT2LMHeadModel with ours' shape and weights (GPT-2's Conv1D weights are (in, out))."""
    c = ours.config
    cfg = transformers.GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd,
                                  n_layer=c.n_layer, n_head=c.n_head, activation_function="gelu_new",
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=c.norm_eps,
                                  tie_word_embeddings=True, use_cache=False,
                                  bos_token_id=None, eos_token_id=None)
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
    return hf


def hf_optimizer(hf: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW with the same split as fromzero: decay the matrices of Conv1D layers only."""
    decay, no_decay = [], []
    for name, p in hf.named_parameters():  # deduplicated: the tied head appears once, as wte
        is_matrix = p.dim() == 2 and not name.startswith(("transformer.wte", "transformer.wpe"))
        (decay if is_matrix else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS)


def make_step(model, optimizer, logits_of):
    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        logits = logits_of(model, x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def time_steps(step, batches) -> float:
    """Seconds for one step per batch."""
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds per model")
    ap.add_argument("--steps", type=int, default=5, help="training steps per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = create_model("gpt-char-6x384", dropout=0.0).train()
    c = ours.config
    hf = build_hf(ours).train()
    steps = {
        "fromzero": make_step(ours, build_optimizer(ours, OptimConfig(lr=LR, weight_decay=WD, betas=list(BETAS),
                                                                      eps=EPS)), lambda m, x: m(x)),
        "hf": make_step(hf, hf_optimizer(hf), lambda m, x: m(x).logits),
    }
    n_batches = args.warmup + args.repeats * args.steps
    data = torch.randint(0, c.vocab_size, (n_batches, args.batch, c.block_size + 1))
    batches = [(d[:, :-1], d[:, 1:]) for d in data]

    first = {name: step(*batches[0]) for name, step in steps.items()}  # identical weights and batch
    diff = abs(first["fromzero"] - first["hf"])
    print(f"first-step loss: fromzero {first['fromzero']:.6f}  hf {first['hf']:.6f}  |diff| {diff:.2e} "
          f"({'OK' if diff < 1e-4 else 'MISMATCH'} at 1e-4)")
    for step in steps.values():
        time_steps(step, batches[1 : args.warmup])

    tokens = args.steps * args.batch * c.block_size
    rates: dict[str, list[float]] = {"fromzero": [], "hf": []}
    for r in range(args.repeats):
        chunk = batches[args.warmup + r * args.steps : args.warmup + (r + 1) * args.steps]
        for name in (["fromzero", "hf"] if r % 2 == 0 else ["hf", "fromzero"]):
            rates[name].append(tokens / time_steps(steps[name], chunk))
        print(f"round {r + 1}: fromzero {rates['fromzero'][-1]:,.0f} tok/s  hf {rates['hf'][-1]:,.0f} tok/s")

    med = {name: statistics.median(v) for name, v in rates.items()}
    # per-round ratios pair measurements taken seconds apart, so they resist drifting machine load
    ratio = statistics.median(a / b for a, b in zip(rates["fromzero"], rates["hf"], strict=True))
    print(f"median tokens/s: fromzero {med['fromzero']:,.0f}  hf {med['hf']:,.0f}")
    print(f"ratio fromzero/hf: {ratio:.3f} (median of per-round ratios; ratio of medians "
          f"{med['fromzero'] / med['hf']:.3f})")
    if args.json:
        result = {"config": {"n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
                             "block_size": c.block_size, "vocab_size": c.vocab_size, "batch": args.batch,
                             "threads": args.threads, "steps_per_round": args.steps, "repeats": args.repeats},
                  "torch": torch.__version__, "transformers": transformers.__version__,
                  "first_step_loss": first, "tokens_per_s": rates, "median_tokens_per_s": med,
                  "ratio_fromzero_over_hf": ratio}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
