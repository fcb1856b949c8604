"""``fromzero info`` on an image run: what it is, what it learned from, and how it scored."""

from __future__ import annotations

from pathlib import Path

from fromzero.runs import VISION_INFO, load_run, read_run_json
from fromzero.train.cost_estimate import human
from fromzero.train.image_cost import image_cost

EVAL_FILE = "eval.json"


def describe_image_run(run_dir: str | Path) -> list[str]:
    """Lines describing an image run: task, model, data, training, best validation and test metrics."""
    path = Path(run_dir)
    info = read_run_json(path / VISION_INFO)
    size = "x".join(str(s) for s in info.get("image_size") or [])
    cost = image_cost(load_run(path, with_weights=False).model_config, (info.get("image_size") or [None])[0])
    flops = cost["flops_per_image"]
    lines = [f"image run: {info['task']} with {info['family']} ({info.get('parameters', 0):,} parameters)",
             f"input: {info['channels']} channel(s), {size}; classes: {len(info['class_names'])}"
             + (f" ({', '.join(info['class_names'][:10])})" if info["class_names"] else ""),
             f"FLOPs per image: {human(flops['forward'])} forward, {human(flops['training'])} training (3x)",
             f"images: {info.get('images')}"]
    if info.get("init"):
        lines.append(f"initialised from: {info['init']['run']} ({info['init']['kind']}, "
                     f"{info['init']['tensors_loaded']} tensors)")
    lines.append(f"training: {info.get('steps')} steps, {info.get('train_wall_s', 0):.0f}s, "
                 f"{info.get('images_per_s', 0):,.0f} images/s on {info.get('device')} "
                 f"({info.get('threads')} threads); best step {info.get('best_step')} by {info.get('select_metric')}")
    best = info.get("best_validation") or {}
    if best:
        lines.append("best validation: " + ", ".join(f"{k[4:]} {v:.4f}" for k, v in best.items()
                                                     if isinstance(v, float | int) and k != "val_ppl"))
    if (path / EVAL_FILE).is_file():
        test = read_run_json(path / EVAL_FILE).get("test") or {}
        metrics = test.get("metrics") or {}
        lines.append(f"test ({test.get('images')} images): " + ", ".join(
            f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float | int)))
    return lines
