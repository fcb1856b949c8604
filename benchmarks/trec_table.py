"""The TREC table of issue 18: chance and majority, zero-shot MiniLM, k-shot prompting of a GPT run, MiniLM full and
LoRA fine-tuning, an LSTM classifier, and augmentation (EDA, back-translation) with 1% and 10% of the labels.

    python benchmarks/trec_table.py [--gpt RUN] [--bt FWD_RUN BWD_RUN] [--only ROWS] [--reuse]
        [--out runs/trec_table] [--results docs/results.md]
    python benchmarks/trec_table.py --smoke ...   # tiny steps on whatever --base / --data give (a test)

Every number comes from the `fromzero` command line, called in this process (``fromzero.cli.main``):

    baselines   chance (1 / labels) and the training majority class predicted for every test question
    zero_shot   fromzero zero-shot BASE --labels recipes/zero_shot/trec_labels.yaml
    few_shot    fromzero few-shot GPT --k 0,1,4,8 (shots drawn from train)    (needs --gpt RUN)
    full, lora  fromzero finetune recipes/finetune_trec_{full,lora}.yaml
    lstm        fromzero pretrain recipes/rnn_lm.yaml on TREC's training questions (an LSTM LM, BPE 2,000), then
                fromzero finetune recipes/finetune_trec_full.yaml with it as base (mean pooling)
    augment     for 1% and 10% of the training labels (a stratified subset drawn with each seed, at least one
                question per class) and seeds 0, 1, 2: LoRA on (a) the subset, (b) the subset + fromzero augment
                --alpha 0.1 --n-aug 4 (EDA), (c) the subset + fromzero augment --back-translate FWD BWD (needs
                --bt); mean +- sample std (ddof 1) of test accuracy and macro-F1 over the seeds

Outputs: run directories under --out; benchmarks/results/trec_table.{md,json} (with --smoke: OUT/trec_table.*);
the section between the markers below in --results (not written by --smoke unless --results is given).
``--only`` reruns some rows and merges them into the saved JSON. ``--reuse`` keeps every step whose product
exists and whose command line is the one this call would run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from finetune_table import write_results  # noqa: E402

from fromzero.cli import main as fromzero_main  # noqa: E402
from fromzero.train.precision_probe import cpu_summary  # noqa: E402

START, END = "<!-- trec_table:start -->", "<!-- trec_table:end -->"
ROWS = ("baselines", "zero_shot", "few_shot", "full", "lora", "lstm", "augment")
KS = "0,1,4,8"
FRACTIONS = (0.01, 0.1)
VARIANTS = ("subset", "eda", "bt")
SMOKE = ["--train.max_steps=2", "--train.eval_every=2", "--train.log_every=1", "--train.batch_size=4",
         "--optim.warmup_steps=0"]
AUG_STEPS = ["--train.max_steps=150"]  # 1% / 10% subsets: half the recipe's budget, as self_training_trec.py
# the LSTM: recipes/rnn_lm.yaml's 2 x 256 LSTM with a 2,000-token byte-level BPE (word pieces: TREC questions
# fit max_len 32 as for MiniLM; characters made them ~4x longer and the padded LSTM ~4x slower per step);
# mean pooling: in 150-step probes it reached validation accuracy 0.58 where last-token pooling reached 0.33
LSTM_TOKENIZER = ["--data.tokenizer.kind=bpe", "--data.tokenizer.vocab_size=2000"]
LSTM_LM = [*LSTM_TOKENIZER, "--train.max_steps=400", "--train.eval_every=100", "--train.ckpt_every=0",
           "--sample.prompts=[]"]
LSTM_CLF = ["--task.pooling=mean", "--optim.lr=3e-3", "--optim.weight_decay=0.0", "--train.max_steps=600",
            "--train.eval_every=100"]


class Ctx:
    """Paths and options of one call; ``run`` executes (or reuses) one fromzero command."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.out = args, (ROOT / args.out).resolve()
        self.data = (ROOT / args.data).resolve()
        self.train, self.test = self.data / "train.jsonl", self.data / "test.jsonl"
        self.base = str((ROOT / args.base).resolve())
        self.splits = [f"--task.{s}={self.data / f'{s}.jsonl'}" for s in ("train", "validation", "test")]

    def steps(self, overrides: list[str]) -> list[str]:
        return SMOKE if self.args.smoke else overrides

    def run(self, key: str, argv: list[str], product: Path) -> float:
        """Run ``fromzero ARGV`` unless --reuse finds ``product`` made by the same argv; returns its seconds."""
        marker = self.out / "argv" / f"{key}.json"
        if self.args.reuse and product.exists() and marker.is_file():
            saved = json.loads(marker.read_text(encoding="utf-8"))
            if saved["argv"] == argv:
                print(f"reuse {key}: {product}", flush=True)
                return saved["seconds"]
        if product.is_dir():
            shutil.rmtree(product)
        else:
            product.unlink(missing_ok=True)
        print("$ fromzero", " ".join(argv), flush=True)
        t0 = time.perf_counter()
        code = fromzero_main(argv)
        if code:
            raise SystemExit(f"trec_table: `fromzero {' '.join(argv)}` failed with exit code {code}")
        seconds = time.perf_counter() - t0
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"argv": argv, "seconds": seconds}), encoding="utf-8")
        return seconds


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stratified_subset(rows: list[dict], fraction: float, seed: int) -> list[dict]:
    """round(fraction * n_c) questions of each class c (at least one), drawn with ``seed``, in file order."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in sorted({r["label"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["label"] == label]
        chosen += rng.permutation(idx)[:max(1, round(fraction * len(idx)))].tolist()
    return [rows[i] for i in sorted(chosen)]


def _metrics(m: dict) -> dict:
    return {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"]}


def row_baselines(ctx: Ctx) -> dict:
    from fromzero.eval.metrics import classification_metrics

    train, test = read_rows(ctx.train), read_rows(ctx.test)
    labels = sorted({r["label"] for r in train})
    majority = Counter(r["label"] for r in train).most_common(1)[0][0]
    y = [labels.index(r["label"]) for r in test]
    m = classification_metrics(y, [labels.index(majority)] * len(y), labels=list(range(len(labels))))
    return {"chance": {"accuracy": 1 / len(labels)}, "majority": {**_metrics(m), "label": majority},
            "labels": len(labels), "test": len(test), "train": len(train)}


def row_zero_shot(ctx: Ctx) -> dict:
    report = ctx.out / "zero_shot.json"
    s = ctx.run("zero_shot", ["zero-shot", ctx.base, "--data", str(ctx.test), "--labels", str(ROOT / ctx.args.labels),
                              "--out", str(report), "--no-progress"], report)
    return {**_metrics(json.loads(report.read_text())["metrics"]), "seconds": s, "labels_file": ctx.args.labels}


def row_few_shot(ctx: Ctx) -> dict:
    if not ctx.args.gpt:
        return {"not_run": "no GPT run: give --gpt RUN"}
    report = ctx.out / "few_shot.json"
    limit = ["--limit", "8"] if ctx.args.smoke else []
    s = ctx.run("few_shot", ["few-shot", str((ROOT / ctx.args.gpt).resolve()), "--data", str(ctx.test), "--train",
                             str(ctx.train), "--k", KS, "--out", str(report), "--no-progress", *limit], report)
    saved = json.loads(report.read_text())
    return {"run": ctx.args.gpt, "seconds": s, "examples": saved["examples"],
            "k": {k: _metrics(v) for k, v in saved["k"].items()}}


def finetune(ctx: Ctx, key: str, recipe: str, overrides: list[str]) -> dict:
    """``fromzero finetune RECIPE`` into OUT/KEY; its test metrics and training facts."""
    run = ctx.out / key
    argv = ["finetune", str(ROOT / recipe), "--out", str(run), "--no-progress", *overrides]
    s = ctx.run(key, argv, run)
    info = json.loads((run / "finetune.json").read_text())
    return {**_metrics(json.loads((run / "eval.json").read_text())["test"]["metrics"]), "seconds": s,
            "train_wall_s": info.get("train_wall_s"), "steps": info.get("steps"), "run": str(run)}


def row_full(ctx: Ctx) -> dict:
    return finetune(ctx, "full", "recipes/finetune_trec_full.yaml", [f"--base={ctx.base}", *ctx.splits,
                                                                      *ctx.steps([])])


def row_lora(ctx: Ctx) -> dict:
    return finetune(ctx, "lora", "recipes/finetune_trec_lora.yaml", [f"--base={ctx.base}", *ctx.splits,
                                                                      *ctx.steps([])])


def row_lstm(ctx: Ctx) -> dict:
    text = ctx.out / "lstm_lm_text.txt"
    text.parent.mkdir(parents=True, exist_ok=True)
    text.write_text("".join(r["text"] + "\n" for r in read_rows(ctx.train)), encoding="utf-8")
    lm = ctx.out / "lstm_lm"
    smoke_lm = [*SMOKE, *LSTM_TOKENIZER[:1], "--data.tokenizer.vocab_size=300", "--model.block_size=16",
                "--train.eval_batches=1", "--train.ckpt_every=0", "--sample.prompts=[]"]
    s_lm = ctx.run("lstm_lm", ["pretrain", str(ROOT / "recipes/rnn_lm.yaml"), "--out", str(lm), "--no-progress",
                               f"--data.inputs=[{text}]", *(smoke_lm if ctx.args.smoke else LSTM_LM)], lm)
    clf = finetune(ctx, "lstm", "recipes/finetune_trec_full.yaml",
                   [f"--base={lm}", *ctx.splits, *LSTM_CLF, *ctx.steps([])])
    lm_summary = json.loads((lm / "summary.json").read_text()) if (lm / "summary.json").is_file() else {}
    return {**clf, "lm_seconds": s_lm, "lm_val_loss": lm_summary.get("val_loss")}


def _augmented(ctx: Ctx, variant: str, subset: Path, tag: str, seed: int) -> Path | None:
    """The training file of ``variant``: the subset itself, or it + its EDA / back-translation augmentations."""
    if variant == "subset":
        return subset
    if variant == "bt" and not ctx.args.bt:
        return None
    out = subset.with_name(f"{tag}_{variant}.jsonl")
    how = (["--alpha", "0.1", "--n-aug", "4"] if variant == "eda" else
           ["--back-translate", *[str((ROOT / r).resolve()) for r in ctx.args.bt], "--n-aug", str(ctx.args.bt_n_aug),
            "--no-progress"])
    ctx.run(f"{tag}_{variant}_data", ["augment", str(subset), str(out), "--seed", str(seed), *how], out)
    return out


def row_augment(ctx: Ctx) -> dict:
    train, result = read_rows(ctx.train), {}
    for fraction in ctx.args.fractions:
        cells: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for seed in range(ctx.args.seeds):
            tag = f"p{fraction:g}_s{seed}".replace(".", "")
            subset = ctx.out / "subsets" / f"{tag}.jsonl"
            subset.parent.mkdir(parents=True, exist_ok=True)
            subset.write_text("".join(json.dumps(r) + "\n" for r in stratified_subset(train, fraction, seed)),
                              encoding="utf-8")
            for variant in VARIANTS:
                file = _augmented(ctx, variant, subset, tag, seed)
                if file is None:
                    continue
                m = finetune(ctx, f"aug/{tag}_{variant}", "recipes/finetune_trec_lora.yaml",
                             [f"--base={ctx.base}", *ctx.splits, f"--task.train={file}", f"--seed={seed}",
                              *ctx.steps(AUG_STEPS)])
                cells[variant].append({**m, "seed": seed, "rows": len(read_rows(file))})
        result[f"{fraction:g}"] = {v: _summary(c) if c else {"not_run": "no translation runs: give --bt FWD BWD"}
                                   for v, c in cells.items()}
    return result


def _summary(cells: list[dict]) -> dict:
    out = {"seeds": cells, "rows": statistics.mean(c["rows"] for c in cells)}
    for k in ("accuracy", "f1_macro"):
        vals = [c[k] for c in cells]
        out[k] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    return out


RUNNERS = {"baselines": row_baselines, "zero_shot": row_zero_shot, "few_shot": row_few_shot, "full": row_full,
           "lora": row_lora, "lstm": row_lstm, "augment": row_augment}


def _cells(m: dict) -> str:
    return f"{m['accuracy']:.3f} | {m['f1_macro']:.3f}"


def _main_rows(rows: dict, n_train: str, base: str) -> list[str]:
    out = []
    if "baselines" in rows:
        b = rows["baselines"]
        out += [f"| chance (uniform over {b['labels']}) | - | - | {b['chance']['accuracy']:.3f} | - | - |",
                f"| majority class of train ({b['majority']['label']}) for every question | - | {b['train']:,} | "
                f"{_cells(b['majority'])} | - |"]
    if "zero_shot" in rows:
        z = rows["zero_shot"]
        out.append(f"| zero-shot: cosine to label descriptions (`{z['labels_file']}`) | {base} | 0 | "
                   f"{_cells(z)} | {z['seconds']:.0f} |")
    f = rows.get("few_shot")
    if f and "not_run" in f:
        out.append(f"| k-shot prompting | - | - | not run: {f['not_run']} | | |")
    elif f:
        out += [f"| {k}-shot prompting (log-likelihood of each label) | GPT `{f['run']}` | {k} | {_cells(m)} | "
                f"{f['seconds']:.0f} (all k) |" for k, m in f["k"].items()]
    names = {"full": ("full fine-tuning", base), "lora": ("LoRA r=8 fine-tuning", base),
             "lstm": ("LSTM classifier (LSTM LM pretrained on TREC train, then fully fine-tuned)", "rnn (2 x 256)")}
    for key, (name, model) in names.items():
        if key in rows:
            r = rows[key]
            extra = f" + {r['lm_seconds']:.0f} LM" if key == "lstm" else ""
            out.append(f"| {name} | {model} | {n_train} | {_cells(r)} | {r['train_wall_s'] or 0:.0f}{extra} |")
    return out


def _augment_rows(aug: dict) -> list[str]:
    names = {"subset": "the subset", "eda": "+ EDA (alpha 0.1, 4 per question)", "bt": "+ back-translation"}
    out = []
    for fraction, cells in aug.items():
        for variant, c in cells.items():
            if "not_run" in c:
                out.append(f"| {float(fraction):.0%} | {names[variant]} | not run: {c['not_run']} | | |")
                continue
            a, f = c["accuracy"], c["f1_macro"]
            out.append(f"| {float(fraction):.0%} | {names[variant]} | {c['rows']:,.0f} | {a['mean']:.3f} ± "
                       f"{a['std']:.3f} | {f['mean']:.3f} ± {f['std']:.3f} |")
    return out


def render(results: dict) -> str:
    rows, meta = results["rows"], results["meta"]
    n_train = f"{rows['baselines']['train']:,}" if "baselines" in rows else "all"
    b = rows.get("baselines")
    sizes = f": {b['train']:,} training / {b['test']:,} test questions, {b['labels']} labels" if b else ""
    commands = "; ".join(f"`{c}`" for c in dict.fromkeys(results["commands"].values()))
    lines = [START, "## TREC question classification: chance, zero-shot, k-shot, fine-tuning, LSTM, augmentation", "",
             f"Written by {commands} on {meta['machine']}. Data `{meta['data']}` (`fromzero prepare-task trec`"
             f"{sizes}); metrics are the test questions' accuracy and macro-F1 (scikit-learn). Base encoder "
             f"`{meta['base']}`. Time: wall seconds of the step (fine-tunes: the training loop).",
             "", "| method | model | training labels | test accuracy | test macro-F1 | time (s) |",
             "|---|---|---:|---:|---:|---:|", *_main_rows(rows, n_train, Path(meta['base']).name)]
    if "augment" in rows:
        lines += ["", f"Few labels, LoRA (`recipes/finetune_trec_lora.yaml`, {meta['aug_steps']}): each seed draws "
                  "its own stratified subset (at least one question per class) and trains with that seed; "
                  f"mean ± sample std over {meta['seeds']} seeds.", "",
                  "| labels | training data | rows (mean) | test accuracy | test macro-F1 |",
                  "|---|---|---:|---:|---:|", *_augment_rows(rows["augment"])]
    return "\n".join([*lines, END])


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpt", default=None, help="a pretrained GPT run for k-shot prompting")
    p.add_argument("--bt", nargs=2, metavar=("FWD_RUN", "BWD_RUN"), default=None,
                   help="seq2seq runs for back-translation (e.g. en->es, es->en)")
    p.add_argument("--bt-n-aug", type=int, default=4, help="back-translations per question (default 4, as EDA)")
    p.add_argument("--only", default=",".join(ROWS), help=f"comma-separated rows from {','.join(ROWS)}")
    p.add_argument("--reuse", action="store_true", help="keep finished steps run with the same command line")
    p.add_argument("--smoke", action="store_true", help="2 training steps everywhere (a test of the plumbing)")
    p.add_argument("--out", default="runs/trec_table")
    p.add_argument("--base", default="runs/all-minilm-l6-v2")
    p.add_argument("--data", default="runs/data/trec")
    p.add_argument("--labels", default="recipes/zero_shot/trec_labels.yaml")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--fractions", type=lambda s: [float(x) for x in s.split(",")], default=list(FRACTIONS))
    p.add_argument("--results", default=None, help="markdown file to update (default docs/results.md; none with "
                                                    "--smoke)")
    args = p.parse_args(argv)
    args.only = [r.strip() for r in args.only.split(",") if r.strip()]
    bad = [r for r in args.only if r not in ROWS]
    if bad:
        p.error(f"--only: unknown row {bad[0]!r}; choose from {', '.join(ROWS)}")
    if args.results is None and not args.smoke:
        args.results = "docs/results.md"
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    ctx = Ctx(args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    target = ctx.out if args.smoke else ROOT / "benchmarks" / "results"
    saved = target / "trec_table.json"
    results = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else {"rows": {}, "commands": {}}
    shown = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    for name in args.only:
        results["rows"][name] = RUNNERS[name](ctx)
        results["commands"][name] = f"python benchmarks/trec_table.py {shown}".strip()
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results, indent=2), encoding="utf-8")  # a failed later row keeps this one
    results["meta"] = {"base": args.base, "data": args.data,
                       "machine": f"{cpu_summary()}, {os.cpu_count()} cores, torch threads 1",
                       "seeds": args.seeds, "aug_steps": " ".join(ctx.steps(AUG_STEPS))}
    saved.write_text(json.dumps(results, indent=2), encoding="utf-8")
    section = render(results)
    (target / "trec_table.md").write_text(section + "\n", encoding="utf-8")
    if args.results:
        write_results(ROOT / args.results, section)
    print(section)
    return results


if __name__ == "__main__":
    main()
