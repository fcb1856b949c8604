"""Training science on TREC (all-MiniLM-L6-v2 + LoRA, recipes/finetune_trec_lora.yaml): three experiments.

1. ``study``: TPE against a 3x3 grid over the same two keys (learning rate x LoRA rank), the same step
   budget, no pruning, maximising validation macro-F1: does TPE find a configuration at least as good in no
   more trials? Both studies run through ``fromzero tune`` with ``--workers 2`` (one torch thread each); the
   best trial's test macro-F1 is read from its run directory.
2. ``ensemble``: the recipe with seeds 0, 1, 2, then ``fromzero ensemble`` (mean of probabilities) on the
   test split against each member.
3. ``adversarial``: the recipe with and without adversarial training (``train.adversarial``), each attacked
   with ``fromzero attack --method pgd`` at the same epsilons: robust accuracy gain and clean accuracy cost.

Writes ``--work``/training_science.json and .md (the docs/results.md section) and copies the study plots to
docs/plots/. Needs the one-time setup of the recipe (its header): the imported MiniLM run and the TREC split.

Run:  .venv/bin/python benchmarks/training_science_trec.py [--parts study,ensemble,adversarial]
          [--steps 150] [--work runs/training_science]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "finetune_trec_lora.yaml"
FROMZERO = str(Path(sys.executable).with_name("fromzero"))
GRID_SPACE = """# 3 x 3 grid: learning rate x LoRA rank
optim.lr: {type: float, low: 3.0e-4, high: 3.0e-3, log: true, grid: [3.0e-4, 1.0e-3, 3.0e-3]}
method.lora.rank: {type: categorical, choices: [4, 8, 16]}
"""
TPE_SPACE = """# the same two keys, continuous learning rate
optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
method.lora.rank: {type: categorical, choices: [4, 8, 16]}
"""


def run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` (output to ``log``), fail loudly; returns its wall time."""
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - start


def fixed(steps: int) -> list[str]:
    """Overrides every run of this benchmark shares: the step budget, one thread, evaluation every 50 steps."""
    return [f"--train.max_steps={steps}", "--train.threads=1", "--train.eval_every=50",
            "--train.early_stop_patience=0", "--train.keep_last=1"]


def test_metrics(run_dir: Path) -> dict:
    """The test metrics a fine-tune's eval.json holds (``fromzero eval`` first where a tuning trial has none)."""
    if not (run_dir / "eval.json").is_file():
        run([FROMZERO, "eval", str(run_dir), "--no-progress"], run_dir.parent / f"{run_dir.name}_eval.log")
    data = json.loads((run_dir / "eval.json").read_text())
    return _metrics(data.get("test", data))


def _metrics(entry: dict) -> dict:
    """An eval.json entry's metrics (``{"metrics": {...}, "examples": N, ...}``, or the metrics themselves)."""
    return entry.get("metrics", entry)


def study(args, sampler: str, space: str) -> dict:
    folder = args.work / f"study_{sampler}"  # kept: the same command continues (or re-reads) a finished study
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.yaml").write_text(space)
    cmd = [FROMZERO, "tune", str(RECIPE), "--space", str(folder / "space.yaml"), "--sampler", sampler,
           "--trials", "9", "--storage", f"sqlite:///{folder / 'study.db'}", "--workers", "2",
           "--out", str(folder / "out"), "--pruner", "none", "--metric", "f1_macro", "--direction", "maximize",
           "--seed", "0", *fixed(args.steps)]
    wall = run(cmd, folder / "tune.log")
    summary = json.loads((folder / "out" / "study.json").read_text())
    trials = sorted((t for t in summary["trials"] if t["state"] == "COMPLETE"), key=lambda t: t["number"])
    best = max(trials, key=lambda t: t["value"])
    running, first_best = float("-inf"), None
    for i, t in enumerate(trials, 1):  # the trial count at which the final best value was first reached
        running = max(running, t["value"])
        if first_best is None and running >= best["value"]:
            first_best = i
    for png in (folder / "out" / "plots").glob("*.png"):
        shutil.copyfile(png, ROOT / "docs" / "plots" / f"tune_trec_{sampler}_{png.name}")
    return {"sampler": sampler, "wall_s": wall, "trial_seconds": sum(t["seconds"] or 0 for t in trials),
            "trials": len(trials), "best_val_f1": best["value"],
            "best_params": best["params"], "best_reached_at_trial": first_best,
            "best_test": test_metrics(Path(best["run_dir"])), "values": [t["value"] for t in trials]}


def finetune(args, out: Path, extra: list[str]) -> tuple[Path, float]:
    """The recipe into ``out`` (replaced) with ``extra`` overrides; returns (run dir, wall seconds)."""
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    wall = run([FROMZERO, "finetune", str(RECIPE), "--out", str(out), "--no-progress", *fixed(args.steps), *extra],
               out.parent / f"{out.name}.log")
    return out, wall


def ensemble(args) -> dict:
    folder = args.work / "ensemble"
    members = [finetune(args, folder / f"seed{s}", [f"--seed={s}"]) for s in (0, 1, 2)]
    out = folder / "mean"
    shutil.rmtree(out, ignore_errors=True)
    run([FROMZERO, "ensemble", *(str(m) for m, _ in members), "--method", "mean", "--out", str(out),
         "--no-progress"], folder / "ensemble.log")
    evaluation = json.loads((out / "ensemble.json").read_text())["evaluation"]
    rows = [{"run": f"seed {s}", **m["metrics"]} for s, m in zip((0, 1, 2), evaluation["members"], strict=True)]
    return {"members": rows, "ensemble": evaluation["ensemble"], "examples": evaluation["examples"],
            "member_wall_s": [w for _, w in members]}


def adversarial(args) -> dict:
    folder = args.work / "adversarial"
    runs = {"clean": finetune(args, folder / "clean", []),
            "pgd-trained": finetune(args, folder / "pgd", ["--adversarial.method=pgd",
                                                           f"--adversarial.eps={args.adv_eps}",
                                                           "--adversarial.steps=3"])}
    eps = ",".join(str(e) for e in args.attack_eps)
    result = {"train_eps_l2": args.adv_eps, "attack": "pgd, 10 steps, L-inf ball on the token embeddings"}
    for name, (run_dir, wall) in runs.items():
        run([FROMZERO, "attack", str(run_dir), "--method", "pgd", "--eps", eps, "--no-progress"],
            folder / f"attack_{name}.log")
        attack = json.loads((run_dir / "attack.json").read_text())
        result[name] = {"wall_s": wall, "eps": attack["eps"], "accuracy": attack["accuracy"],
                        "embedding_rms": attack.get("embedding_rms"), "test": test_metrics(run_dir)}
    return result


def markdown(result: dict) -> str:
    """The docs/results.md section."""
    lines = ["## Training science on TREC (issue 16)", "",
             f"`{result['command']}` on {result['cpu']}: all-MiniLM-L6-v2 + LoRA (`recipes/finetune_trec_lora.yaml`), "
             f"{result['steps']} steps per run, one torch thread per run, evaluation every 50 steps.", ""]
    if "study" in result:
        lines += ["### TPE against a 3x3 grid (learning rate x LoRA rank, 9 trials each, no pruning)", "",
                  "| sampler | trials | best val macro-F1 | reached at trial | best params | its test macro-F1 "
                  "| its test accuracy | trial seconds, summed |", "|---|---:|---:|---:|---|---:|---:|---:|"]
        for r in result["study"]:
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in r["best_params"].items())
            lines.append(f"| {r['sampler']} | {r['trials']} | {r['best_val_f1']:.4f} | {r['best_reached_at_trial']} "
                         f"| {params} | {r['best_test'].get('f1_macro', float('nan')):.4f} "
                         f"| {r['best_test'].get('accuracy', float('nan')):.4f} | {r['trial_seconds']:.0f} |")
        lines += ["", "Plots: `docs/plots/tune_trec_{grid,tpe}_*.png` (optimisation history, parallel coordinates, "
                  "parameter importance).", ""]
    if "ensemble" in result:
        e = result["ensemble"]
        lines += [f"### Ensemble of 3 seeds (mean of probabilities), test split ({e['examples']} questions)", "",
                  "| model | accuracy | macro-F1 |", "|---|---:|---:|"]
        for m in e["members"]:
            lines.append(f"| {m['run']} | {m['accuracy']:.4f} | {m['f1_macro']:.4f} |")
        lines += [f"| **ensemble** | {e['ensemble']['accuracy']:.4f} | {e['ensemble']['f1_macro']:.4f} |", ""]
    if "adversarial" in result:
        a = result["adversarial"]
        lines += [f"### Adversarial training (PGD, L2 radius {a['train_eps_l2']} per example, 3 steps) under a "
                  f"PGD attack ({a['attack']})", "",
                  "| model | clean test accuracy | " + " | ".join(f"acc @ eps {e}" for e in a["clean"]["eps"]) + " |",
                  "|---|---:|" + "---:|" * len(a["clean"]["eps"])]
        for name in ("clean", "pgd-trained"):
            r = a[name]
            lines.append(f"| {name} | {r['test']['accuracy']:.4f} | "
                         + " | ".join(f"{x:.4f}" for x in r["accuracy"]) + " |")
        lines += ["", f"Token-embedding RMS (the scale eps is read against): {a['clean']['embedding_rms']:.4f}.", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="study,ensemble,adversarial")
    ap.add_argument("--steps", type=int, default=150, help="training steps of every run")
    ap.add_argument("--adv-eps", type=float, default=0.5, help="adversarial training radius (L2 per example)")
    ap.add_argument("--attack-eps", type=lambda s: [float(x) for x in s.split(",")], default=[0, 0.01, 0.02, 0.05],
                    help="PGD attack radii (L-inf, embedding units)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "training_science")
    ap.add_argument("--render", action="store_true", help="only rewrite the table from --work's JSON")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.render:
        result = json.loads((args.work / "training_science.json").read_text())
        for r in result.get("study", []):
            r["best_test"] = _metrics(r["best_test"])
            summary = json.loads((args.work / f"study_{r['sampler']}" / "out" / "study.json").read_text())
            r["trial_seconds"] = sum(t["seconds"] or 0 for t in summary["trials"] if t["state"] == "COMPLETE")
        for name in ("clean", "pgd-trained"):
            if name in result.get("adversarial", {}):
                result["adversarial"][name]["test"] = _metrics(result["adversarial"][name]["test"])
        (args.work / "training_science.md").write_text(markdown(result))
        print(markdown(result))
        return
    parts = args.parts.split(",")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    result = {"command": "python benchmarks/training_science_trec.py " + " ".join(sys.argv[1:]), "cpu": cpu,
              "steps": args.steps}
    if "study" in parts:
        result["study"] = [study(args, "grid", GRID_SPACE), study(args, "tpe", TPE_SPACE)]
    if "ensemble" in parts:
        result["ensemble"] = ensemble(args)
    if "adversarial" in parts:
        result["adversarial"] = adversarial(args)
    (args.work / "training_science.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (args.work / "training_science.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
