"""Recommenders on MovieLens: every recipe in recipes/recommend/ beside established libraries (implicit ALS / BPR,
scikit-surprise SVD), all on the same seeded leave-last-out split and scored by the same full-ranking code.

    python benchmarks/recsys_table.py                       # train everything, write results + docs/results.md
    python benchmarks/recsys_table.py --only sasrec,mf_bpr  # a subset (merged into the existing results)
    python benchmarks/recsys_table.py --quick               # smoke run: few steps, recsys_quick.{json,md}
    python benchmarks/recsys_table.py --render              # markdown again from the json, no training

fromzero rows run ``fromzero.recommend.runner.train_recommender`` in this process (runs under
runs/recsys_table/<name>, replaced each time); library rows are in benchmarks/recsys_libraries.py. The
split is rebuilt from the recipes' shared seed and checked against the split.csv of a fromzero run.
Needs the optional extra: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fromzero.data.datasets.rating_sources import load_rating_data  # noqa: E402
from fromzero.data.interaction_split import leave_last_out, read_split  # noqa: E402
from fromzero.recommend.recipe import load_recommend_recipe, recipe_dict  # noqa: E402
from fromzero.recommend.runner import train_recommender  # noqa: E402
from fromzero.recommend.tasks import RunData  # noqa: E402

RECIPES = ROOT / "recipes" / "recommend"
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "results.md"
SECTION = "## Recommenders on MovieLens"
ORDER = ["popularity", "item_knn", "content", "mf_explicit", "mf_bpr", "two_tower", "sasrec", "bert4rec"]
QUICK_STEPS = 20
TIME_RATIO = 3.0  # the most fromzero's MF training time may be, over the library's, to count as comparable
LIBRARIES = ["implicit ALS", "implicit BPR", "surprise SVD"]
NOTE = ("All rows share one split (leave-last-out by timestamp, seed from the recipes): each user's last rating is "
        "the test item, the one before it the validation item. Every model, library or not, trains on the train "
        "split only (the libraries never see the validation split; fromzero uses it only to pick its best "
        "checkpoint), and ranks every catalogue item for each test user with train + validation items excluded, "
        "through fromzero.eval.ranking_metrics.RankingAccumulator. RMSE / MAE: the test ratings, predictions "
        "clipped to [0.5, 5]. Train s: fromzero's train_wall_s (gradient families include their periodic "
        "full-ranking validation); the libraries' fit() alone. Libraries use their default hyperparameters.")


def recipe_names() -> list[str]:
    found = [p.stem.removeprefix("movielens_") for p in sorted(RECIPES.glob("movielens_*.yaml"))]
    return [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]


def step_overrides(path: Path, scale: float, quick: bool) -> list[str]:
    """--train.* overrides scaling a gradient recipe's steps (nothing for counted families or scale 1)."""
    recipe = load_recommend_recipe(path)
    if recipe.loss(str(path)) == "fit" or (scale == 1.0 and not quick):
        return []
    steps = QUICK_STEPS if quick else max(1, round(recipe.train.max_steps * scale))
    out = [f"--train.max_steps={steps}"]
    for key in ("eval_every", "ckpt_every"):
        out.append(f"--train.{key}={max(1, min(getattr(recipe.train, key), steps))}")
    return [*out, f"--optim.warmup_steps={min(recipe.optim.warmup_steps, steps // 2)}"]


def _reusable(out: Path, path: Path, overrides: list[str]) -> bool:
    """True when out holds a finished run of exactly this recipe + overrides."""
    if not ((out / "eval.json").is_file() and (out / "recommender.json").is_file()):
        return False
    saved = recipe_dict(load_recommend_recipe(out / "config.yaml"))
    return saved == recipe_dict(load_recommend_recipe(path, overrides))


def train_fromzero(name: str, extra: list[str], work: Path, scale: float, quick: bool, reuse: bool
                   ) -> dict[str, Any]:
    """Train one recipe into work/name (a fresh run; with reuse, a finished identical run is read back)."""
    path = RECIPES / f"movielens_{name}.yaml"
    overrides = [*step_overrides(path, scale, quick), *extra]
    out = work / name
    if reuse and _reusable(out, path, overrides):
        print(f"= reusing {out}", flush=True)
        info = json.loads((out / "recommender.json").read_text(encoding="utf-8"))
        test = json.loads((out / "eval.json").read_text(encoding="utf-8"))["test"]
    else:
        shutil.rmtree(out, ignore_errors=True)
        print(f"+ train_recommender({path.relative_to(ROOT)}, {overrides}, out={out})", flush=True)
        result = train_recommender(path, overrides, out=out, progress=False)
        info, test = result.info, result.test_metrics
    print(f"  {name}: {json.dumps(test)} train {info['train_wall_s']:.1f}s", flush=True)
    loss = load_recommend_recipe(path, overrides).loss(str(path))
    return {"model": name, "kind": f"fromzero: {info['family']}, {loss}",
            "test": {k: v for k, v in test.items() if k != "users"},
            "users": test.get("users"), "train_wall_s": info["train_wall_s"],
            "settings": {"recipe": str(path.relative_to(ROOT)), "overrides": overrides, "steps": info.get("steps"),
                         "best_step": info.get("best_step"), "parameters": info.get("parameters"),
                         "threads": info.get("threads", torch.get_num_threads())}}


def shared_run_data(names: list[str], work: Path) -> tuple[RunData, int]:
    """The split every recipe uses (they must agree on data and seed), checked against a run's split.csv."""
    recipes = [load_recommend_recipe(RECIPES / f"movielens_{n}.yaml") for n in recipe_names()]
    first = recipes[0]
    for n, r in zip(recipe_names(), recipes, strict=True):
        if (r.data, r.seed) != (first.data, first.seed):
            raise SystemExit(f"recipes/recommend/movielens_{n}.yaml: data/seed differ from the first recipe; the "
                             "table needs one split")
    data = load_rating_data(first.data, str(RECIPES))
    split = leave_last_out(data, first.seed)
    for n in names:
        saved = work / n / "split.csv"
        if saved.is_file():
            other = read_split(saved, data)
            for part in ("train", "validation", "test"):
                a, b = getattr(split, part), getattr(other, part)
                if sorted(zip(a.user, a.item, strict=True)) != sorted(zip(b.user, b.item, strict=True)):
                    raise SystemExit(f"{saved}: the {part} split differs from leave_last_out(seed={first.seed})")
            print(f"split checked against {saved}", flush=True)
            break
    return RunData(data, split, None, first.data.max_len), first.seed


def library_rows(run: RunData, seed: int, threads: int, quick: bool) -> list[dict[str, Any]]:
    from recsys_libraries import implicit_rows, surprise_row

    rows = []
    try:
        rows += implicit_rows(run, 10, seed, threads, quick)
    except ImportError as e:
        print(f"implicit not available ({e}); pip install -e .[bench]", flush=True)
    try:
        rows.append(surprise_row(run, 10, seed, quick))
    except ImportError as e:
        print(f"scikit-surprise not available ({e}); pip install -e .[bench]", flush=True)
    for row in rows:
        print(f"  {row['model']}: {json.dumps(row['test'])} fit {row['train_wall_s']:.1f}s", flush=True)
    return rows


def machine() -> dict[str, Any]:
    name = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": name, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _metric(rows: dict[str, dict[str, Any]], name: str, key: str) -> float | None:
    row = rows.get(name)
    return None if row is None else (row["train_wall_s"] if key == "train_wall_s" else row["test"].get(key))


def target_lines(rows_list: list[dict[str, Any]]) -> list[str]:
    """The issue's two targets, as measured: ratios and met / not met."""
    rows = {r["model"]: r for r in rows_list}
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    sas = _metric(rows, "sasrec", "ndcg_10")
    ratios = {b: _ratio(sas, _metric(rows, b, "ndcg_10")) for b in ("popularity", "item_knn", "mf_bpr")}
    met_a = all(r is not None and r > 1 for r in ratios.values())
    line_a = ("(a) SASRec NDCG@10 vs popularity / item-kNN / BPR-MF: "
              + ("n/a" if sas is None else f"{sas:.4f}") + ", ratios "
              + " / ".join(map(fmt, ratios.values()))
              + f" -> {'met' if met_a else 'NOT met'} (target: > 1x each)")
    rmse = _ratio(_metric(rows, "mf_explicit", "rmse"), _metric(rows, "surprise SVD", "rmse"))
    ndcg = _ratio(_metric(rows, "mf_bpr", "ndcg_10"), _metric(rows, "implicit BPR", "ndcg_10"))
    t_svd = _ratio(_metric(rows, "mf_explicit", "train_wall_s"), _metric(rows, "surprise SVD", "train_wall_s"))
    t_bpr = _ratio(_metric(rows, "mf_bpr", "train_wall_s"), _metric(rows, "implicit BPR", "train_wall_s"))
    met_b = rmse is not None and ndcg is not None and rmse <= 1.02 and ndcg >= 0.98
    # "comparable" read as within 3x: the libraries are compiled SGD loops, fromzero's time includes the
    # Trainer's periodic full-ranking validation and checkpoints
    fast = t_svd is not None and t_bpr is not None and max(t_svd, t_bpr) <= TIME_RATIO
    line_b = (f"(b) fromzero MF vs library: RMSE ratio (mf_explicit / surprise SVD) {fmt(rmse)}, NDCG@10 ratio "
              f"(mf_bpr / implicit BPR) {fmt(ndcg)} -> quality {'met' if met_b else 'NOT met'} (target: RMSE ratio "
              f"<= 1.02 and NDCG ratio >= 0.98); train-time ratios {fmt(t_svd)} (vs SVD) and {fmt(t_bpr)} (vs "
              f"implicit BPR) -> time {'met' if fast else 'NOT met'} (comparable read as <= {TIME_RATIO:g}x)")
    return [line_a, line_b]


def render(result: dict[str, Any]) -> str:
    """The markdown section (also the body of benchmarks/results/recsys_table.md)."""
    m = result["machine"]
    cell = lambda row, key, d: "" if row["test"].get(key) is None else f"{row['test'][key]:.{d}f}"  # noqa: E731
    lines = [SECTION, "", f"`{'`, then `'.join(result['commands'])}` on {m['cpu']} ({m['cores']} cores, torch "
             f"{m['torch']}, {m['torch_threads']} torch threads, OMP_NUM_THREADS={m['OMP_NUM_THREADS'] or 'unset'}"
             f"){' (QUICK smoke run: few steps)' if result.get('quick') else ''}. MovieLens (dslabs): "
             f"{result['data']['users']} users, {result['data']['items']} items, split train / validation / test "
             f"{result['data']['train']} / {result['data']['validation']} / {result['data']['test']} ratings.", "",
             NOTE, "", "| model | kind | HR@10 | NDCG@10 | MRR | coverage@10 | cold MRR | RMSE | MAE | train s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['model']} | {row['kind']} | {cell(row, 'hr_10', 4)} | {cell(row, 'ndcg_10', 4)} | "
                     f"{cell(row, 'mrr', 4)} | {cell(row, 'coverage_10', 3)} | {cell(row, 'cold_mrr', 4)} | "
                     f"{cell(row, 'rmse', 4)} | "
                     f"{cell(row, 'mae', 4)} | {row['train_wall_s']:.1f} |")
    libs = [r for r in result["rows"] if r["model"] in LIBRARIES]
    if libs:
        lines += ["", "Library settings: " + "; ".join(
            f"{r['model']} {json.dumps(r['settings'], sort_keys=True)}" for r in libs) + "."]
    cold = next((r["test"]["cold_users"] for r in result["rows"] if "cold_users" in r["test"]), None)
    if cold is not None:
        lines += ["", f"Cold MRR: the MRR over the {cold} test users whose test item no training rating touched "
                      "(only a model that reads item content can rank it; fromzero rows only)."]
    lines += ["", "Targets of issue 17, as measured:", ""] + [f"- {t}" for t in target_lines(result["rows"])]
    return "\n".join(lines) + "\n"


def write_docs(section: str) -> None:
    """Replace (or append at the end) the section in docs/results.md; nothing else in the file changes."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.find(SECTION + "\n")
    if start < 0:
        DOCS.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")
        return
    end = text.find("\n## ", start + len(SECTION))
    rest = "" if end < 0 else text[end:]
    DOCS.write_text(text[:start] + section.rstrip("\n") + ("\n" + rest if rest else "\n"), encoding="utf-8")


def _sort_key(row: dict[str, Any]) -> tuple[int, int, str]:
    name = row["model"]
    if name in LIBRARIES:
        return (1, LIBRARIES.index(name), name)
    return (0, ORDER.index(name) if name in ORDER else len(ORDER), name)


def run(args: argparse.Namespace, paths: tuple[Path, Path]) -> dict[str, Any]:
    names = recipe_names()
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - set(names) - {"implicit", "surprise"}
    if unknown:
        raise SystemExit(f"--only: unknown {sorted(unknown)}; choose from {names + ['implicit', 'surprise']}")
    per_model: dict[str, list[str]] = {}
    for item in args.set:
        name, _, override = item.partition(":")
        per_model.setdefault(name, []).append(override if override.startswith("--") else f"--{override}")
    rows = [train_fromzero(n, per_model.get(n, []), args.work, args.steps_scale, args.quick, args.reuse)
            for n in names if only is None or n in only]
    run_data, seed = shared_run_data(names, args.work)
    threads = torch.get_num_threads()
    lib = library_rows(run_data, seed, threads, args.quick) if only is None or only & {"implicit", "surprise"} else []
    rows += [r for r in lib if only is None or r["model"].split()[0] in only]
    command = "python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute()
                                     else sys.argv[0], *sys.argv[1:]])
    result: dict[str, Any] = {"commands": [command], "quick": args.quick, "rows": rows, "machine": machine(),
                              "data": {"users": run_data.n_users, "items": run_data.n_items, "seed": seed,
                                       **{p: len(getattr(run_data.split, p).user)
                                          for p in ("train", "validation", "test")}}}
    if only is not None and paths[0].is_file():  # a subset: merge into the existing rows
        old = json.loads(paths[0].read_text(encoding="utf-8"))
        fresh = {r["model"] for r in rows}
        result["rows"] = [r for r in old["rows"] if r["model"] not in fresh] + rows
        result["commands"] = old.get("commands", []) + [command]
    result["rows"].sort(key=_sort_key)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", help="comma-separated recipe names (movielens_<name>.yaml) and/or implicit, surprise")
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every gradient recipe's max_steps")
    p.add_argument("--set", action="append", default=[], metavar="NAME:section.key=value",
                   help="a per-model override, e.g. sasrec:train.max_steps=500 (repeatable)")
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_STEPS} steps, few library iterations")
    p.add_argument("--render", action="store_true", help="re-render the markdown from the json, no training")
    p.add_argument("--work", type=Path, default=None, help="fromzero run directories (default runs/<results stem>)")
    p.add_argument("--reuse", action="store_true", help="read back finished runs of the same recipe instead of "
                                                        "training them again")
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/results.md")
    args = p.parse_args()
    stem = "recsys_quick" if args.quick else "recsys_table"
    paths = (RESULTS / f"{stem}.json", RESULTS / f"{stem}.md")
    args.work = args.work or ROOT / "runs" / stem
    if args.render:
        result = json.loads(paths[0].read_text(encoding="utf-8"))
    else:
        result = run(args, paths)
        RESULTS.mkdir(parents=True, exist_ok=True)
        paths[0].write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    section = render(result)
    paths[1].write_text(section, encoding="utf-8")
    if not args.quick and not args.no_docs:
        write_docs(section)
    print(section)


if __name__ == "__main__":
    main()
