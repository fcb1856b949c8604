"""Self-training on a low-label TREC split: labeled-only vs pseudo-labeled rounds, as a table in docs/results.md.

A seeded ``--fraction`` (default 1%) of TREC's training questions keeps its labels; the rest becomes the
unlabeled pool (its gold labels only measure pseudo-label accuracy). ``fromzero self-train`` then
fine-tunes all-MiniLM-L6-v2 with ``recipes/finetune_trec_lora.yaml`` on the labeled part (round 0 =
the labeled-only baseline), pseudo-labels the pool above ``--threshold`` and retrains, for ``--rounds``
rounds. Validation and test are TREC's usual 500 + 500 (their labels are never pseudo-labeled).

    .venv/bin/python benchmarks/self_training_trec.py [--fraction 0.01 --rounds 2 --threshold 0.9]
        [extra --section.key=value overrides for every round's recipe]

The base run and the TREC split are created first when missing (see benchmarks/finetune_table.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_table import DATA, ROOT, _fromzero, ensure_inputs, write_results  # noqa: E402

START, END = "<!-- self_training:start -->", "<!-- self_training:end -->"
RECIPE = "recipes/finetune_trec_lora.yaml"


def low_label_split(fraction: float, seed: int, out: Path) -> tuple[Path, Path, int, int]:
    """Write ``labeled.jsonl`` (a seeded ``fraction`` of train, at least one per class) and ``pool.jsonl``."""
    rows = [json.loads(line) for line in (DATA / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    order = np.random.default_rng(seed).permutation(len(rows))
    n = max(1, round(fraction * len(rows)))
    chosen = set(order[:n].tolist())
    for label in sorted({r["label"] for r in rows}):  # a class with no example could never be predicted
        if not any(rows[i]["label"] == label for i in chosen):
            chosen.add(next(int(i) for i in order if rows[i]["label"] == label))
    out.mkdir(parents=True, exist_ok=True)
    labeled, pool = out / "labeled.jsonl", out / "pool.jsonl"
    labeled.write_text("".join(json.dumps(rows[i]) + "\n" for i in sorted(chosen)), encoding="utf-8")
    pool.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(rows) if i not in chosen), encoding="utf-8")
    return labeled, pool, len(chosen), len(rows) - len(chosen)


def table(report: dict, n_labeled: int, n_pool: int, args: argparse.Namespace, overrides: list[str]) -> str:
    rows = ["| round | trained on | pseudo labels added (their accuracy) | test accuracy | test macro-F1 |",
            "|---|---|---|---|---|"]
    for r in report["rounds"]:
        acc = "—" if r.get("accuracy") is None else f"{r['accuracy']:.1%}"
        added = "labeled only" if r["round"] == 0 else f"+{r['added']:,} ({acc})"
        rows.append(f"| {r['round']} | {n_labeled + r.get('cumulative', 0):,} | {added} | "
                    f"{r['test']['accuracy']:.1%} | {r['test']['f1_macro']:.3f} |")
    first, last = report["rounds"][0]["test"], report["rounds"][-1]["test"]
    return "\n".join([
        START,
        f"## Self-training on {args.fraction:.0%} of TREC's labels",
        "",
        f"`python benchmarks/self_training_trec.py --fraction {args.fraction} --rounds {args.rounds} "
        f"--threshold {args.threshold}{' ' + ' '.join(overrides) if overrides else ''}`: all-MiniLM-L6-v2 + LoRA "
        f"(`{RECIPE}`), {n_labeled} labeled training questions, {n_pool:,} unlabeled (their gold labels only "
        "score the pseudo labels), the usual 500 validation / 500 test questions.",
        "",
        *rows,
        "",
        f"Self-training changes test accuracy by **{last['accuracy'] - first['accuracy']:+.1%}** "
        f"({first['accuracy']:.1%} labeled-only → {last['accuracy']:.1%}) and macro-F1 by "
        f"{last['f1_macro'] - first['f1_macro']:+.3f}. Report: `{report['out']}/self_training.json`.",
        END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.01, help="share of training questions kept labeled")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0, help="which questions stay labeled")
    parser.add_argument("--out", default="runs/self_training_trec")
    parser.add_argument("--results", default="docs/results.md")
    args, overrides = parser.parse_known_args()
    ensure_inputs()
    out = ROOT / args.out
    shutil.rmtree(out, ignore_errors=True)
    labeled, pool, n_labeled, n_pool = low_label_split(args.fraction, args.seed, out / "split")
    _fromzero("self-train", RECIPE, "--unlabeled", str(pool), "--rounds", str(args.rounds), "--threshold",
              str(args.threshold), "--out", str(out / "rounds"), "--no-progress", f"--task.train={labeled}",
              *overrides)
    report = json.loads((out / "rounds" / "self_training.json").read_text())
    report["out"] = str((out / "rounds").relative_to(ROOT))
    section = table(report, n_labeled, n_pool, args, overrides)
    write_results(ROOT / args.results, section)
    print(section)


if __name__ == "__main__":
    main()
