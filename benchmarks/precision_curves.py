"""Validation loss of the same model trained in fp32 and under bf16 autocast: one plot, and the final gap.

Both runs are the bundled quickstart recipe (recipes/quickstart.yaml: character-level GPT on Pride and Prejudice)
with the same seed, data order and initial weights, shrunk so that bf16 also finishes where it is emulated (an
AVX2-only CPU runs bf16 matmuls ~10x slower than fp32): gpt-char-tiny (2 layers, 4 heads, 64 wide, 64-token
context, ~0.1M parameters), batch 32, 400 steps, validation every 50 steps on 10 batches. Only
``train.precision`` differs. Prints the final validation loss of each and their relative difference
(target: within 1%); writes the two curves into one PNG and, with --json, the numbers.

Run:  .venv/bin/python benchmarks/precision_curves.py [--steps 400] [--plot docs/plots/precision_curves.png]
      [--json out.json] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from fromzero.pretrain.runner import pretrain
from fromzero.train.loggers import read_metrics
from fromzero.train.precision_probe import cpu_summary

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
SIZE = ["--model.name=gpt-char-tiny", "--model.n_layer=2", "--model.n_head=4", "--model.n_embd=64",
        "--model.block_size=64", "--train.batch_size=32", "--train.eval_batches=10", "--train.keep_last=0",
        "--optim.warmup_steps=50", "--sample.prompts=[]"]


def train(precision: str, steps: int, threads: int, work: Path) -> tuple[list[tuple[int, float]], float, float]:
    """One run: its (step, val_loss) curve, final val loss and seconds."""
    overrides = SIZE + [f"--train.precision={precision}", f"--train.max_steps={steps}", "--train.eval_every=50",
                        f"--train.ckpt_every={steps}", f"--train.threads={threads}"]
    start = time.perf_counter()
    result = pretrain(RECIPE, overrides, out=work / precision, progress=False)
    seconds = time.perf_counter() - start
    curve = [(r["step"], r["val_loss"]) for r in read_metrics(result.run_dir / "metrics.jsonl") if "val_loss" in r]
    return curve, result.train.val_loss, seconds


def plot(curves: dict[str, list[tuple[int, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        label = "bf16 autocast" if name == "bf16" else name
        ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400, help="training steps of each run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plot", default="docs/plots/precision_curves.png", help="where the PNG goes")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    print(f"cpu: {cpu_summary()}\ntorch {torch.__version__}, {args.threads} threads, {args.steps} steps", flush=True)
    curves, final, seconds = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            curves[precision], final[precision], seconds[precision] = train(precision, args.steps, args.threads,
                                                                            Path(tmp))
            print(f"{precision}: final val loss {final[precision]:.4f} in {seconds[precision]:.0f} s", flush=True)
    rel = (final["bf16"] - final["fp32"]) / final["fp32"]
    verdict = "within" if abs(rel) <= 0.01 else "NOT within"
    print(f"relative difference (bf16 - fp32) / fp32: {rel:+.2%} ({verdict} 1%)")
    plot(curves, Path(args.plot), f"gpt-char-tiny on Pride and Prejudice, {args.steps} steps\nfinal val loss: "
                                  f"fp32 {final['fp32']:.4f}, bf16 autocast {final['bf16']:.4f} ({rel:+.2%})")
    print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cpu": cpu_summary(), "torch": torch.__version__, "threads": args.threads, "steps": args.steps,
            "size": SIZE, "final_val_loss": final, "relative_difference": rel, "seconds": seconds,
            "curves": curves}, indent=2))


if __name__ == "__main__":
    main()
