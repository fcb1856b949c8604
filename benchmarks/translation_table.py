"""The en->es translation table of issue 18: Bible verses (WEB -> Reina-Valera 1909), scored on the held-out book
of Ruth with sacrebleu's corpus BLEU and chrF, into docs/results.md and benchmarks/results/translation_table.*.

Rows, each trained by the CLI in its own process (so wall times and peak memory start from an empty process):

- copy the source: the English verse as its own "translation" (what a model that learnt nothing scores);
- T5 (`recipes/t5_bible_init.yaml` = tokenizer + architecture, then `recipes/finetune_bible_t5.yaml`, from a
  fresh init, beam search with length penalty);
- seq2seq-rnn, Bahdanau attention (`recipes/rnn_bible_init.yaml`, `recipes/finetune_bible_rnn.yaml`): the
  model before the Transformer, on the same tokenizer, data and decoding.

    python benchmarks/translation_table.py [--only t5,rnn] [--reuse] [--out runs/translation_table]
                                           [--render]      # rebuild the docs section from the saved JSON

One-time setup: `bash scripts/install_bible.sh` (Debian SWORD modules), then the script prepares
runs/data/bible-en-es itself when missing. `--reuse` keeps a row whose run directory already holds eval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from finetune_table import write_results  # noqa: E402

DATA = ROOT / "runs" / "data" / "bible-en-es"
DOCS = ROOT / "docs" / "results.md"
RESULTS = ROOT / "benchmarks" / "results" / "translation_table"
START, END = "<!-- translation_table:start -->", "<!-- translation_table:end -->"
# row -> (label, base-run recipe, fine-tune recipe)
ROWS = {"t5": ("T5 (t5-mini, 3+3 x 256, 7.6M)", "recipes/t5_bible_init.yaml", "recipes/finetune_bible_t5.yaml"),
        "rnn": ("seq2seq-rnn, Bahdanau attention (GRU)", "recipes/rnn_bible_init.yaml",
                "recipes/finetune_bible_rnn.yaml")}


def _fromzero(*args: str) -> float:
    """Run one CLI command in a fresh process; its wall time in seconds."""
    cmd = [sys.executable, "-m", "fromzero", *args, "--no-progress"]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - start


def _out_of(recipe: str) -> Path:
    for line in (ROOT / recipe).read_text(encoding="utf-8").splitlines():
        if line.startswith("out:"):
            return ROOT / line.split(":", 1)[1].split("#")[0].strip()
    raise SystemExit(f"{recipe}: no top-level out: key")


def copy_row() -> dict[str, Any]:
    import sacrebleu

    pairs = [line.split("\t") for line in (DATA / "test.tsv").read_text(encoding="utf-8").splitlines()]
    hyps, refs = [p[0] for p in pairs], [p[1] for p in pairs]
    return {"row": "copy", "model": "copy the English source", "bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
            "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score, "train_wall_s": 0.0}


def model_row(name: str, work: Path, reuse: bool) -> dict[str, Any]:
    label, base_recipe, recipe = ROWS[name]
    base, run = work / f"{name}_base", work / name
    if not (reuse and (run / "eval.json").is_file()):
        base_s = 0.0 if (reuse and (base / "tokenizer.json").is_file()) else _fromzero(
            "pretrain", base_recipe, "--out", str(base))
        _fromzero("finetune", recipe, f"--base={base}", "--out", str(run))
        (run / "bench_base_wall_s.txt").write_text(f"{base_s:.1f}\n", encoding="utf-8")
    test = json.loads((run / "eval.json").read_text(encoding="utf-8"))["test"]["metrics"]
    info = json.loads((run / "finetune.json").read_text(encoding="utf-8"))
    base_wall = float((run / "bench_base_wall_s.txt").read_text()) if (run / "bench_base_wall_s.txt").is_file() \
        else None
    return {"row": name, "model": label, "bleu": test["bleu"], "chrf": test["chrf"],
            "parameters": info["total_parameters"], "steps": info["steps"], "best_step": info["best_step"],
            "train_wall_s": info["train_wall_s"], "base_wall_s": base_wall, "threads": info.get("threads"),
            "recipe": recipe}


def machine() -> dict[str, Any]:
    name = platform.processor() or "unknown CPU"
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    for line in lscpu.splitlines():
        if line.startswith("Model name"):
            name = line.split(":", 1)[1].strip()
    flags = next((ln for ln in lscpu.splitlines() if ln.startswith("Flags")), "")
    return {"cpu": name, "cores": os.cpu_count(), "amx": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "python": platform.python_version()}


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [START, "## Translation en→es: Bible, held-out book of Ruth (85 verses)", "",
             f"`python benchmarks/translation_table.py` on {m['cpu']} ({m['cores']} cores"
             f"{', AMX' if m['amx'] else ''}). Train: 30,492 World English Bible → Reina-Valera 1909 verse pairs; "
             "test: the whole book of Ruth, never seen in training; sacrebleu corpus BLEU (13a) and chrF on the "
             "references as written. Each model starts from a fresh init on one shared 8,000-piece unigram "
             "tokenizer; the kept weights are the best validation chrF.", "",
             "| model | BLEU | chrF | parameters | steps (best) | training |", "|---|---:|---:|---:|---|---:|"]
    for r in result["rows"]:
        steps = f"{r['steps']:,} ({r['best_step']:,})" if "steps" in r else "-"
        params = f"{r['parameters'] / 1e6:.1f}M" if "parameters" in r else "-"
        wall = f"{r['train_wall_s'] / 60:.1f} min" if r["train_wall_s"] else "-"
        lines.append(f"| {r['model']} | {r['bleu']:.2f} | {r['chrf']:.2f} | {params} | {steps} | {wall} |")
    lines += ["", "Targets of issue 18 (T5 within 30 CPU minutes of training): "
              + "; ".join(f"BLEU {r['bleu']:.2f} {'>=' if r['bleu'] >= 10 else '<'} 10, chrF {r['chrf']:.2f} "
                          f"{'>=' if r['chrf'] >= 35 else '<'} 35, {r['train_wall_s'] / 60:.1f} min "
                          f"{'<=' if r['train_wall_s'] <= 1800 else '>'} 30"
                          for r in result["rows"] if r["row"] == "t5")]
    if result.get("note"):
        lines += ["", result["note"]]
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="t5,rnn", help="comma-separated model rows (t5, rnn)")
    ap.add_argument("--out", default="runs/translation_table", help="work folder for the runs")
    ap.add_argument("--reuse", action="store_true", help="keep rows whose run already has eval.json")
    ap.add_argument("--render", action="store_true", help="rebuild the docs section from the saved JSON only")
    ap.add_argument("--note", default="", help="a sentence on the conditions (e.g. other jobs on the CPU), shown "
                                               "under the table")
    args = ap.parse_args()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if args.render:
        write_results(DOCS, render(json.loads(RESULTS.with_suffix(".json").read_text(encoding="utf-8"))))
        return
    if not (DATA / "test.tsv").is_file():
        _fromzero("prepare-task", "bible-en-es", str(DATA))
    work = ROOT / args.out
    rows = [copy_row()] + [model_row(name, work, args.reuse) for name in args.only.split(",") if name]
    result = {"machine": machine(), "rows": rows, "note": args.note}
    RESULTS.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    section = render(result)
    RESULTS.with_suffix(".md").write_text(section, encoding="utf-8")
    write_results(DOCS, section)
    print(section)


if __name__ == "__main__":
    main()
