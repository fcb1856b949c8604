"""Vision results table: every image family trained from its recipe, with parameters, training time and test
metric, plus the MAE story (ViT fine-tuned from MAE vs from scratch on 1%, 10%, 100% of the labels).

    python benchmarks/vision_table.py                  # train what is missing, write docs/results.md
    python benchmarks/vision_table.py --only fashion_cnn scenes_yolo
    python benchmarks/vision_table.py --build-only     # table from the runs already there

Each row is one `fromzero train recipes/vision/<name>.yaml` in its own process (runs go to
runs/vision_table/<name>). The torchvision reference (accuracy and images/s beside fromzero's ResNet-18 in
one process) needs torch + torchvision, which do not load with this machine's CPU build of torch: it is
`benchmarks/vision_reference.py`, run in a separate environment, and its JSON is merged into the table here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from finetune_table import write_results  # noqa: E402

RECIPES = ROOT / "recipes" / "vision"
# (row name, recipe, overrides): the table's rows, in order
ROWS = [
    ("digits_cnn", "digits_cnn", []),
    ("fashion_cnn", "fashion_cnn", []),
    ("fashion_resnet", "fashion_resnet", []),
    ("fashion_inception", "fashion_inception", []),
    ("fashion_vit", "fashion_vit", []),
    ("fashion_mae", "fashion_mae", []),
    ("scenes_yolo", "scenes_yolo", []),
    ("scenes_rcnn", "scenes_rcnn", []),
    ("scenes_unet", "scenes_unet", []),
    ("scenes_fcn", "scenes_fcn", []),
    ("photos_dncnn", "photos_dncnn", []),
    ("photos_unet_denoise", "photos_unet_denoise", []),
]
# The MAE story: the same ViT on a fraction of the labels, from scratch and from the MAE run's encoder
# (100% from scratch is the fashion_vit row itself).
FRACTION_STEPS = {0.01: 150, 0.1: 500, 1.0: None}  # None: fashion_vit's own steps
for frac, steps in FRACTION_STEPS.items():
    tag = f"{frac:g}".replace(".", "p")
    extra = [f"--data.label_fraction={frac}", f"--train.max_steps={steps or 1500}",
             f"--train.eval_every={100 if steps else 250}", f"--train.ckpt_every={100 if steps else 250}"]
    if steps:
        ROWS.append((f"vit_scratch_{tag}", "fashion_vit", extra))
    ROWS.append((f"vit_mae_{tag}", "fashion_vit_from_mae", [*extra, "--init={runs}/fashion_mae"]))

METRIC = {"image_classification": ("accuracy", "accuracy"), "detection": ("map_50", "mAP@0.5"),
          "segmentation": ("miou", "mIoU"), "denoising": ("psnr_gain", "PSNR gain (dB)"), "mae": ("loss", "loss")}


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def train_row(name: str, recipe: str, extra: list[str], runs: Path, threads: int) -> Path:
    out = runs / name
    if (out / "vision.json").is_file():
        return out
    cmd = [sys.executable, "-m", "fromzero", "train", str(RECIPES / f"{recipe}.yaml"), "--out", str(out),
           "--no-progress", f"--train.threads={threads}", *[e.format(runs=runs) for e in extra]]
    if (out / "config.yaml").is_file():
        cmd.append("--resume")
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return out


def row(name: str, run: Path) -> dict:
    info = json.loads((run / "vision.json").read_text())
    test = json.loads((run / "eval.json").read_text())["test"]["metrics"]
    return {"name": name, "task": info["task"], "family": info["family"], "parameters": info["parameters"],
            "steps": info["steps"], "train_s": info["train_wall_s"], "images_per_s": info["images_per_s"],
            "metrics": test, "init": (info.get("init") or {}).get("run"), "threads": info.get("threads")}


def _metric(r: dict) -> str:
    key, _ = METRIC[r["task"]]
    value = r["metrics"].get(key)
    if r["task"] == "image_classification":
        return f"{100 * value:.2f}%"
    if r["task"] == "denoising":
        return (f"+{value:.2f} dB ({r['metrics']['noisy_psnr']:.2f} -> {r['metrics']['psnr']:.2f}; wavelet "
                f"+{r['metrics']['wavelet_psnr_gain']:.2f}; SSIM {r['metrics']['ssim']:.3f})")
    if r["task"] == "detection":
        return f"{value:.3f} (mAP@0.5:0.95 {r['metrics']['map']:.3f})"
    if r["task"] == "segmentation":
        return f"{value:.3f} (Dice {r['metrics']['dice']:.3f})"
    return f"{value:.4f}"


def table(rows: list[dict], reference: dict | None) -> str:
    threads = ", ".join(str(t) for t in sorted({r["threads"] for r in rows if r["threads"]}))
    lines = ["<!-- vision_table:start -->", "## Vision: every image family from its recipe",
             "", f"`python benchmarks/vision_table.py` on {cpu_name()}, torch {_torch_version()}, {threads} thread(s) "
             "per run. Test split of each source; training time includes validation. Runs here were trained two or "
             "three at a time on the machine's 2 cores, so their images/s are lower than one run alone gets; the "
             "speed comparison with torchvision below is measured in one process.", "",
             "| run | task | family | parameters | steps | train time | images/s | test metric |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['task']} | {r['family']} | {r['parameters']:,} | {r['steps']} | "
                     f"{r['train_s'] / 60:.1f} min | {r['images_per_s']:,.0f} | {_metric(r)} |")
    lines += _targets(rows, reference) + _mae_story(rows) + _reference(reference) + ["<!-- vision_table:end -->"]
    return "\n".join(lines)


# (what, row, metric key, threshold): the targets, each checked against the measured run
TARGETS = [("Fashion-MNIST small CNN >= 91%", "fashion_cnn", "accuracy", 0.91),
           ("Fashion-MNIST ResNet >= 93%", "fashion_resnet", "accuracy", 0.93),
           ("Fashion-MNIST ViT >= 90%", "fashion_vit", "accuracy", 0.90),
           ("composed scenes YOLO-style mAP@0.5 >= 0.80", "scenes_yolo", "map_50", 0.80),
           ("composed scenes segmentation mIoU >= 0.80 (U-Net)", "scenes_unet", "miou", 0.80),
           ("denoising PSNR gain >= +6 dB at sigma 25 (DnCNN)", "photos_dncnn", "psnr_gain", 6.0)]


def _targets(rows: list[dict], ref: dict | None) -> list[str]:
    by = {r["name"]: r for r in rows}
    out = ["", "### The issue's targets", "", "| target | measured | met |", "|---|---|---|"]
    for what, name, key, threshold in TARGETS:
        if name in by:
            value = by[name]["metrics"][key]
            out.append(f"| {what} | {value:.4f} | {'yes' if value >= threshold else 'no'} |")
    if "vit_mae_0p1" in by and "vit_scratch_0p1" in by:
        a, b = by["vit_scratch_0p1"]["metrics"]["accuracy"], by["vit_mae_0p1"]["metrics"]["accuracy"]
        out.append(f"| MAE-pretrained ViT beats scratch on 10% of the labels | {b:.4f} vs {a:.4f} | "
                   f"{'yes' if b > a else 'no'} |")
    for m in (ref or {}).get("speed", []):
        if m["name"].startswith("fromzero") and "28x28" in m["name"]:
            out.append(f"| ResNet-18 training images/s >= 1.0x torchvision's, same input | {m['ratio']:.2f}x | "
                       f"{'yes' if m['ratio'] >= 1.0 else 'no'} |")
    return out


def _mae_story(rows: list[dict]) -> list[str]:
    by = {r["name"]: r for r in rows}
    out = ["", "### MAE pretraining, then fine-tuning on a fraction of the labels (test accuracy)", "",
           "| labels | ViT from scratch | ViT from the MAE encoder |", "|---|---|---|"]
    for frac in FRACTION_STEPS:
        tag = f"{frac:g}".replace(".", "p")
        a, b = by.get(f"vit_scratch_{tag}" if frac < 1 else "fashion_vit"), by.get(f"vit_mae_{tag}")
        if a and b:
            out.append(f"| {frac:.0%} | {100 * a['metrics']['accuracy']:.2f}% | "
                       f"{100 * b['metrics']['accuracy']:.2f}% |")
    return out if len(out) > 5 else []


def _reference(ref: dict | None) -> list[str]:
    if not ref:
        return ["", "torchvision reference: not measured in this run (see benchmarks/vision_reference.py)."]
    out = []
    if "speed" in ref:
        out += ["", "### Beside torchvision (one process, same input, alternating rounds, median)", "",
                f"`{ref['command']}` on {ref['cpu']}, torch {ref['torch']}, torchvision {ref['torchvision']}, "
                f"{ref['threads']} threads.", "", "| model | parameters | training images/s | vs torchvision |",
                "|---|---|---|---|",
                *[f"| {m['name']} | {m['parameters']:,} | {m['images_per_s']:,.0f} | {m['ratio']:.2f}x |"
                  for m in ref["speed"]]]
    if "accuracy" in ref:
        out += _reference_accuracy(ref["accuracy"])
    return out


def _reference_accuracy(a: dict) -> list[str]:
    rows = ["", f"Trained side by side (`{a['command']}`, {a['threads']} thread(s)): the `{a['recipe']}` recipe, "
            f"{a['steps']} steps, its model replaced by each ResNet-18 (same small stem), same data pipeline and "
            "Trainer:", "", "| model | test accuracy | training images/s | train time |", "|---|---|---|---|"]
    for name, r in a["runs"].items():
        rows.append(f"| {name} | {100 * r['accuracy']:.2f}% | {r['images_per_s']:,.0f} | {r['train_s']:.0f} s |")
    return rows


def _torch_version() -> str:
    import torch

    return torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/vision_table", help="folder of the run directories")
    parser.add_argument("--results", default="docs/results.md")
    parser.add_argument("--only", nargs="+", help="row names to train (others are read if present)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference", default="benchmarks/results/vision_reference.json",
                        help="JSON written by benchmarks/vision_reference.py (merged when present)")
    parser.add_argument("--build-only", action="store_true", help="train nothing; tabulate existing runs")
    args = parser.parse_args()
    runs = ROOT / args.runs
    rows = []
    for name, recipe, extra in ROWS:
        if not args.build_only and (args.only is None or name in args.only):
            train_row(name, recipe, extra, runs, args.threads)
        if (runs / name / "eval.json").is_file():
            rows.append(row(name, runs / name))
    ref_path = ROOT / args.reference
    reference = json.loads(ref_path.read_text()) if ref_path.is_file() else None
    section = table(rows, reference)
    write_results(ROOT / args.results, section)
    print(section)


if __name__ == "__main__":
    main()
