"""``fromzero info`` on a fine-tuned run directory: what was tuned, how, and how well.

Reads only files in the run directory: ``finetune.json`` (base, family, head, labels, method,
parameters, best step and validation metrics, time and memory), ``config.yaml`` (the resolved recipe:
LoRA rank and alpha, select_metric) and ``eval.json`` (test metrics, if `fromzero eval` or
`fromzero finetune` wrote them). A run still training or interrupted has no ``finetune.json`` yet; it
is described from its recipe and latest checkpoint, with the command that resumes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fromzero.config import load_yaml
from fromzero.runs import FINETUNE_INFO as INFO_FILE
from fromzero.runs import is_finetune_recipe_data, is_finetune_run, read_run_json
from fromzero.train.checkpoint import latest_checkpoint

SHOWN_LABELS = 8  # labels listed by name; the rest are counted


def is_finetune_run_dir(path: str | Path) -> bool:
    """True for a folder written by ``fromzero finetune``, finished or not (its config.yaml is a fine-tuning
    recipe: it has ``base`` and ``task``)."""
    path = Path(path)
    if is_finetune_run(path):
        return True
    config = path / "config.yaml"
    if not config.is_file():
        return False
    return is_finetune_recipe_data(load_yaml(config))


def _metrics_line(metrics: dict[str, Any], prefix: str = "") -> str:
    """``name value`` pairs; rates and errors with 4 decimals, skip flags and counts left out."""
    shown = [f"{k.removeprefix(prefix)} {v:.4f}" for k, v in metrics.items()
             if isinstance(v, (int, float)) and not k.endswith("_skipped") and k != f"{prefix}ppl"]
    return ", ".join(shown) or "none"


def _method_line(info: dict[str, Any], recipe: dict[str, Any]) -> str:
    method = recipe.get("method") or {}
    name = info.get("method") or method.get("name", "?")
    if name == "lora":
        lora, layers = method.get("lora") or {}, info.get("lora_layers") or []
        shown = ", ".join(layers[:2]) + (", ..." if len(layers) > 2 else "")
        head = "head trains" if method.get("train_head", True) else "head frozen"
        return (f"method: lora, rank {lora.get('rank')}, alpha {lora.get('alpha'):g}, {len(layers)} layers adapted "
                f"({shown}); {head}")
    if name == "partial":
        frozen = {k: v for k, v in (method.get("freeze") or {}).items() if v}
        return f"method: partial, freeze {json.dumps(frozen)}"
    return f"method: {name}"


def _labels_line(info: dict[str, Any]) -> str:
    labels = info.get("labels")
    if not labels:
        return f"outputs: {info.get('num_labels', 1)} value(s), no label names"
    more = f", ... (+{len(labels) - SHOWN_LABELS})" if len(labels) > SHOWN_LABELS else ""
    return f"labels: {len(labels)} ({', '.join(labels[:SHOWN_LABELS])}{more})"


def _unfinished(path: Path, recipe: dict[str, Any]) -> list[str]:
    task, method = recipe.get("task") or {}, recipe.get("method") or {}
    ckpt = latest_checkpoint(path / "checkpoints")
    max_steps = (recipe.get("train") or {}).get("max_steps")
    where = f"latest checkpoint at step {ckpt.step} of {max_steps}" if ckpt else "no checkpoint yet (resumes at step 0)"
    return [f"fine-tuned run: {path} (unfinished: {where})",
            f"base: {recipe.get('base')}",
            f"task: {task.get('kind')}, problem {task.get('problem')}",
            f"method: {method.get('name')}",
            f"resume: fromzero finetune {path / 'config.yaml'} --out {path} --resume"]


def describe_finetune_run(path: str | Path) -> list[str]:
    """The lines ``fromzero info`` prints for a fine-tuned run directory."""
    path = Path(path)
    recipe = load_yaml(path / "config.yaml") if (path / "config.yaml").is_file() else {}
    if not is_finetune_run(path):
        return _unfinished(path, recipe)
    info = read_run_json(path / INFO_FILE)
    task = recipe.get("task") or {}
    lines = [f"fine-tuned run: {path}",
             f"base: {info.get('base')} ({info.get('family')})",
             f"task: {info.get('kind')}, problem {info.get('problem') or 'single_label'}"
             + (f", max_len {task['max_len']}" if "max_len" in task else ""),
             _labels_line(info), _method_line(info, recipe),
             f"parameters: {info['trainable_parameters']:,} trainable of {info['total_parameters']:,} "
             f"({info['trainable_percent']:.2f}%)"]
    select = info.get("select_metric") or recipe.get("select_metric")
    resumed = f", resumed from step {info['resumed_from_step']}" if info.get("resumed_from_step") else ""
    lines.append(f"training: {info.get('steps')} steps" + (" (stopped early)" if info.get("stopped_early") else "")
                 + f", best step {info.get('best_step')} by validation {select}{resumed}")
    lines.append(f"best validation: {_metrics_line(info.get('best_validation') or {}, 'val_')}")
    eval_path = path / "eval.json"
    test = read_run_json(eval_path).get("test") if eval_path.is_file() else None
    if test:
        lines.append(f"test ({test['examples']:,} examples, eval.json): {_metrics_line(test['metrics'])}")
    else:
        lines.append(f"test: not scored yet (`fromzero eval {path}`)")
    if "train_wall_s" in info:
        lines.append(f"time and memory: {info['train_wall_s']:.1f} s training, peak RSS {info['peak_rss_mb']:.0f} MiB "
                     f"(+{info['train_rss_delta_mb']:.0f} MiB in training), {info.get('device')}, "
                     f"{info.get('threads')} thread(s)")
    return lines
