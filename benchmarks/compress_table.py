"""Every compression variant of two models, measured side by side: a section of docs/results.md plus two PNGs.

Models: the fine-tuned English classifier (all-MiniLM-L6-v2 on TREC, `recipes/finetune_trec_full.yaml`) and
the quickstart character GPT (`recipes/quickstart.yaml`). Each variant is built once with the `fromzero`
command a user would type (see VARIANTS; kept under --out and reused unless --rebuild), then all variants of a
model are measured in ONE process:

- latency at batch 1 and batch 32 (classifier: real test questions padded to 32 tokens; GPT: 128-character
  windows of the held-out split): rounds alternate over the variants so machine noise hits all of them alike;
  the median of the rounds is reported, with throughput = batch / median;
- quality on the same inputs for every variant (classifier: test accuracy and macro-F1 with scikit-learn;
  GPT: validation cross-entropy on the same held-out windows), through the same code for PyTorch and ONNX
  Runtime variants;
- size on disk (model.safetensors or model.onnx), parameters (logical weights) and non-zero weights.

Peak memory is measured per variant in a fresh subprocess (load + one batch-32 forward, ru_maxrss), so one
variant's allocations do not hide another's.

Run:  .venv/bin/python benchmarks/compress_table.py [--models cls gpt] [--rounds 15] [--threads 1] [--rebuild]
The section between the markers below replaces the same section of docs/results.md (the rest is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from compress_variants import VARIANTS, ensure_sources  # noqa: E402
from finetune_table import write_results  # noqa: E402  (replaces the section between its markers)

START, END = "<!-- compress_table:start -->", "<!-- compress_table:end -->"
SEQ = {"cls": 32, "gpt": 128}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The CPU features that decide which int8 / bf16 kernels run."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "flags unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    have = [f for f in wanted if f in flags]
    return "has " + ", ".join(have) + "; lacks " + ", ".join(f for f in wanted if f not in flags)


def fromzero(*args: str) -> None:
    cmd = [sys.executable, "-m", "fromzero", *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})


def build(model: str, out_root: Path, rebuild: bool) -> list[dict]:
    """Build the variants that are missing (all with --rebuild); returns the variant table rows."""
    rows = []
    for v in VARIANTS[model]:
        path = out_root / model / v.get("dir", v["name"]) if "path" not in v else ROOT / v["path"]
        if rebuild and path.exists() and v.get("cmd"):
            shutil.rmtree(path)
        if v.get("cmd") and not path.exists():
            fromzero(*[a.format(out=path, root=out_root / model) for a in v["cmd"]])
        rows.append({**v, "path": path})
    return rows


# --- inputs and predictors ------------------------------------------------------------------------------------

def classifier_inputs(run_dir: Path) -> tuple[list[dict[str, torch.Tensor]], np.ndarray]:
    """Test batches of 32 (padded to 32 tokens) and their gold label ids; no model is loaded."""
    from fromzero.data.labels import LabelVocab
    from fromzero.data.task_encoding import collate
    from fromzero.finetune.recipe import load_finetune_recipe
    from fromzero.finetune.task_dataset import load_task_data
    from fromzero.runs import load_run

    run = load_run(run_dir, with_weights=False)
    recipe = load_finetune_recipe(run_dir / "config.yaml")
    files = {s: str(run_dir / f) for s, f in run.info["files"].items()}
    data = load_task_data(recipe.task, run.tokenizer, LabelVocab(run.info["labels"]), splits=("test",), paths=files)
    feats = data.features["test"]
    batches = []
    for i in range(0, len(feats), 32):
        b = collate(feats[i:i + 32], data.pad_id)
        pad = SEQ["cls"] - b["input_ids"].shape[1]
        batches.append({"input_ids": F.pad(b["input_ids"], (0, pad), value=data.pad_id),
                        "attention_mask": F.pad(b["attention_mask"], (0, pad), value=0)})
    gold = np.array([f["labels"] for f in feats])
    return batches, gold


def gpt_inputs(run_dir: Path, n: int = 8) -> list[dict[str, torch.Tensor]]:
    from fromzero.compress.calibration import calibration_batches
    from fromzero.runs import load_run

    run = load_run(run_dir, with_weights=False)
    return [{"input_ids": b["input_ids"], "labels": b["labels"]} for b in calibration_batches(run, n, 32, seed=123)]


def predictor(row: dict, threads: int) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """batch -> logits, for a run directory (PyTorch) or an ONNX export (ONNX Runtime)."""
    if row.get("onnx"):
        from fromzero.interop.onnx_export import OnnxModel

        ort = OnnxModel(row["path"] / row["onnx"], threads=threads)
        return lambda b: ort(**{k: v for k, v in b.items() if k in ort.input_names})
    from fromzero.compress.calibration import forward
    from fromzero.runs import load_run

    model = load_run(row["path"]).model
    return lambda b: forward(model, {k: v for k, v in b.items() if k != "labels"})


def quality(model: str, fn: Callable, batches: list[dict], gold: np.ndarray | None) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    with torch.inference_mode():
        if model == "cls":
            pred = np.concatenate([fn(b).argmax(-1).numpy() for b in batches])
            return {"accuracy": accuracy_score(gold, pred), "f1_macro": f1_score(gold, pred, average="macro")}
        losses = [F.cross_entropy(fn(b).flatten(0, 1).float(), b["labels"].flatten()).item() for b in batches]
    return {"val_loss": float(np.mean(losses))}


def latencies(fns: dict[str, Callable], batch: dict[str, torch.Tensor], rounds: int) -> dict[str, float]:
    """Median seconds per call of each predictor, rounds alternating over predictors (2 warm-up calls each)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn(batch), fn(batch)
        for _ in range(rounds):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(batch)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def size_and_params(row: dict) -> dict[str, float]:
    path = row["path"] / (row.get("onnx") or "model.safetensors")
    out = {"size_mb": path.stat().st_size / 2**20}
    if row.get("onnx"):
        return out
    from fromzero.runs import load_run

    model = load_run(row["path"]).model
    tensors = [p.detach() for p in model.parameters()]  # a tied weight once
    tensors += [m.dequantize() for m in model.modules() if hasattr(m, "dequantize")]  # quantized linear weights
    total = sum(t.numel() for t in tensors)
    nonzero = sum(int(torch.count_nonzero(t)) for t in tensors)
    return {**out, "params": total, "nonzero": nonzero}


def peak_memory_mb(model: str, row: dict, threads: int) -> float:
    cmd = [sys.executable, __file__, "--peak-memory", model, str(row["path"]), row.get("onnx") or "",
           "--threads", str(threads)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def peak_memory_child(model: str, path: str, onnx: str, threads: int) -> None:
    """Load one variant in this fresh process, run one batch of 32, print the process's peak RSS (MB).

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of the big measuring process would
    report the parent's peak."""
    torch.set_num_threads(threads)
    row = {"path": Path(path), "onnx": onnx or None}
    batch = (classifier_inputs(VARIANT_SOURCE[model])[0][0] if model == "cls"
             else gpt_inputs(VARIANT_SOURCE[model], 1)[0])
    fn = predictor(row, threads)
    with torch.inference_mode():
        fn(batch)
    status = Path("/proc/self/status").read_text()
    print(int(status.split("VmHWM:")[1].split()[0]) / 1024)


VARIANT_SOURCE = {"cls": ROOT / "runs" / "finetune_trec_full", "gpt": ROOT / "runs" / "quickstart"}


def measure(model: str, rows: list[dict], rounds: int, threads: int) -> list[dict]:
    torch.set_num_threads(threads)
    source = VARIANT_SOURCE[model]
    if model == "cls":
        batches, gold = classifier_inputs(source)
    else:
        batches, gold = gpt_inputs(source), None
    one = {k: v[:1] for k, v in batches[0].items()}
    fns = {r["name"]: predictor(r, threads) for r in rows}
    b1, b32 = latencies(fns, one, rounds), latencies(fns, batches[0], max(3, rounds // 3))
    out = []
    for r in rows:
        m = {"name": r["name"], "label": r["label"], "group": r.get("group", ""), **size_and_params(r),
             **quality(model, fns[r["name"]], batches, gold), "b1_ms": 1e3 * b1[r["name"]],
             "b32_ms": 1e3 * b32[r["name"]], "peak_mb": peak_memory_mb(model, r, threads)}
        m["b32_per_s"] = 32 / (m["b32_ms"] / 1e3)
        print(json.dumps(m), flush=True)
        out.append(m)
    return out


# --- report ---------------------------------------------------------------------------------------------------

def quality_cells(model: str, m: dict, ref: dict) -> str:
    if model == "cls":
        return (f"{100 * m['accuracy']:.1f} ({100 * (m['accuracy'] - ref['accuracy']):+.1f}) | "
                f"{100 * m['f1_macro']:.1f}")
    return f"{m['val_loss']:.4f} ({m['val_loss'] - ref['val_loss']:+.4f})"


def table(model: str, ms: list[dict]) -> list[str]:
    ref = ms[0]
    qual = "test accuracy % (vs original) | macro-F1 %" if model == "cls" else "val loss nats/char (vs original)"
    lines = [f"| variant | size MB | params | non-zero | latency b=1 ms (x) | latency b=32 ms (x) | "
             f"throughput b=32 /s | peak RSS MB | {qual} |",
             "|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * (2 if model == "cls" else 1)]
    for m in ms:
        params = f"{m['params']:,}" if "params" in m else "(ONNX)"
        nonzero = f"{m['nonzero']:,}" if "nonzero" in m else ""
        lines.append(f"| {m['label']} | {m['size_mb']:.1f} | {params} | {nonzero} | {m['b1_ms']:.2f} "
                     f"({ref['b1_ms'] / m['b1_ms']:.2f}x) | {m['b32_ms']:.1f} ({ref['b32_ms'] / m['b32_ms']:.2f}x) | "
                     f"{m['b32_per_s']:.0f} | {m['peak_mb']:.0f} | {quality_cells(model, m, ref)} |")
    return lines


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(12, 4.5 * len(results)), squeeze=False)
    for row, (model, ms) in enumerate(results.items()):
        key = "accuracy" if model == "cls" else "val_loss"
        for col, (x, xlabel) in enumerate((("size_mb", "size on disk (MB)"), ("b1_ms", "latency at batch 1 (ms)"))):
            ax = axes[row][col]
            for m in ms:
                ax.scatter(m[x], m[key], s=30)
                ax.annotate(m["name"], (m[x], m[key]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy" if model == "cls" else "validation loss (lower is better)")
            ax.set_title(f"{'TREC classifier (MiniLM)' if model == 'cls' else 'quickstart char GPT'}: quality vs "
                         f"{'size' if col == 0 else 'latency'}")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def section(results: dict[str, list[dict]], args: argparse.Namespace, png: str) -> str:
    titles = {"cls": "all-MiniLM-L6-v2 fine-tuned on TREC (test set, 500 questions)",
              "gpt": "quickstart character GPT (gpt-char-small, held-out Pride and Prejudice windows)"}
    lines = [START, "## Compression", "",
             f"`python benchmarks/compress_table.py --rounds {args.rounds} --threads {args.threads}` on "
             f"{cpu_name()} ({cpu_flags()}), torch {torch.__version__}, {args.threads} thread(s) for PyTorch and "
             "ONNX Runtime alike. "
             "Latency is the median over rounds that alternate between the variants in one process; "
             "(x) is the speed-up over the original. Peak RSS: a fresh process loading the variant and running "
             "one batch of 32. Variants and the commands that built them: `benchmarks/compress_variants.py`; "
             "methods and math: [docs/14-compression.md](14-compression.md).", ""]
    for model, ms in results.items():
        lines += [f"### {titles[model]}", "", *table(model, ms), ""]
    for model in results:
        export = json.loads((Path(args.out) / model / "onnx" / "onnx_export.json").read_text())
        diffs = ", ".join(f"{c['max_abs_diff']:.1e}" for c in export["checks"])
        lines.append(f"ONNX export check ({titles[model].split(' (')[0]}): ONNX Runtime fp32 logits vs PyTorch, max "
                     f"|diff| {diffs} at two random padded shapes.")
    lines += ["", f"![quality vs size and latency]({png})", "", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cls", "gpt"], choices=["cls", "gpt"])
    parser.add_argument("--out", default="runs/compress_table", help="folder for the variant run directories")
    parser.add_argument("--results", default="docs/results.md")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="build every variant again")
    parser.add_argument("--build-only", action="store_true",
                        help="build the missing variants and stop (e.g. one process per model; measure later alone)")
    parser.add_argument("--peak-memory", nargs=3, metavar=("MODEL", "PATH", "ONNX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_memory:
        peak_memory_child(*args.peak_memory, threads=args.threads)
        return
    ensure_sources(fromzero, args.models)
    results = {}
    for model in args.models:
        rows = build(model, ROOT / args.out, args.rebuild)
        if not args.build_only:
            results[model] = measure(model, rows, args.rounds, args.threads)
    if args.build_only:
        return
    (ROOT / args.out).mkdir(parents=True, exist_ok=True)
    (ROOT / args.out / "results.json").write_text(json.dumps(results, indent=1))
    png = "plots/compress_quality.png"
    plot(results, ROOT / "docs" / png)
    text = section(results, args, png)
    write_results(ROOT / args.results, text)
    print(text)


if __name__ == "__main__":
    main()
