"""``fromzero ensemble``: several fine-tuned classifiers combined into one run directory, scored against each
member on the same split.

The members must be single-label sequence-classification runs with the same labels (in the same order) and
the same tokenizer. Each is copied into ``OUT/members/<i>/`` (weights, config, tokenizer: the ensemble is
self-contained); the first member's config.yaml, tokenizer, labels and data copies make the ensemble look like
any fine-tuned run, so ``fromzero eval`` and ``fromzero serve`` take it unchanged (the model is
``runs.ensemble.EnsembleClassifier``; the combination rules are in that module's docstring).

``weighted``: w_i = m_i / sum_j m_j, with m_i the member's best validation value of ``weight_metric``
(accuracy, f1_macro or f1_micro: higher is better) from its finetune.json.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.errors import CheckpointError, ConfigError
from fromzero.eval.task_metrics import score_outputs
from fromzero.finetune.evaluate import FinetunedRun, finetuned_task_data, load_finetuned
from fromzero.finetune.predict import task_outputs
from fromzero.progress import progress
from fromzero.runs import FINETUNE_INFO, VISION_INFO
from fromzero.runs.ensemble import ENSEMBLE_INFO, ENSEMBLE_METHODS, evaluation_record
from fromzero.staging import staged_dir
from fromzero.tune.image_ensemble import build_image_ensemble

WEIGHT_METRICS = ("accuracy", "f1_macro", "f1_micro")
# finetune.json keys the ensemble keeps from its first member (what loading and scoring need)
SHARED_INFO = ("family", "model", "kind", "problem", "num_labels", "pooling", "labels", "base", "truncation")
# member files the copy keeps: what `runs.load_run` reads
MEMBER_FILES = ("config.yaml", FINETUNE_INFO, "tokenizer.json", "labels.txt", "model.safetensors",
                "compression.json", ENSEMBLE_INFO)


def load_members(paths: Sequence[str | Path]) -> list[FinetunedRun]:
    """Load every member and check they can form an ensemble (one-line errors naming the run)."""
    if len(paths) < 2:
        raise ConfigError(f"ensemble: give at least two runs, got {len(paths)}")
    members = [load_finetuned(p) for p in paths]
    first = members[0]
    tokenizer = json.loads((first.path / "tokenizer.json").read_text(encoding="utf-8"))
    for m in members:
        if m.kind != "sequence_classification" or m.problem != "single_label":
            raise CheckpointError(f"{m.path}: a {m.kind} ({m.problem}) run; `fromzero ensemble` combines "
                                  "single-label sequence_classification runs")
        if m.info.get("labels") != first.info.get("labels"):
            raise CheckpointError(f"{m.path}: labels {m.info.get('labels')} differ from {first.path}'s "
                                  f"{first.info.get('labels')}; members must share their labels and their order")
        if json.loads((m.path / "tokenizer.json").read_text(encoding="utf-8")) != tokenizer:
            raise CheckpointError(f"{m.path}: its tokenizer differs from {first.path}'s; members must be fine-tuned "
                                  "from the same base tokenizer")
    return members


def member_weights(members: Sequence[FinetunedRun], method: str, metric: str) -> list[float]:
    """Normalised weights: uniform for mean and vote; proportional to the validation metric for weighted."""
    if method != "weighted":
        return [1.0 / len(members)] * len(members)
    if metric not in WEIGHT_METRICS:
        raise ConfigError(f"--weight-metric: {metric!r} is not one of {', '.join(WEIGHT_METRICS)}")
    values = []
    for m in members:
        best = m.info.get("best_validation") or {}
        if f"val_{metric}" not in best:
            known = ", ".join(k.removeprefix("val_") for k in best) or "none"
            raise CheckpointError(f"{m.path / FINETUNE_INFO}: no best validation {metric} (has: {known}); choose "
                                  "another --weight-metric or --method mean")
        values.append(float(best[f"val_{metric}"]))
    if sum(values) <= 0 or min(values) < 0:
        raise CheckpointError(f"--weight-metric {metric}: the members' values {values} cannot be weights "
                              "(need non-negative numbers with a positive sum); use --method mean")
    return [v / sum(values) for v in values]


def training_summary(members: Sequence[FinetunedRun]) -> dict[str, Any]:
    """finetune.json's training entries for the whole ensemble (what `info` and `eval` print): parameters, wall
    time and steps summed over the members, peak memory their maximum; nothing was selected on validation."""
    infos = [m.info for m in members]
    trainable = sum(int(i.get("trainable_parameters", 0)) for i in infos)
    total = sum(int(i.get("total_parameters", 0)) for i in infos)
    return {"method": "ensemble", "trainable_parameters": trainable, "total_parameters": total,
            "trainable_percent": 100.0 * trainable / total if total else 0.0,
            "train_wall_s": sum(float(i.get("train_wall_s", 0.0)) for i in infos),
            "peak_rss_mb": max(float(i.get("peak_rss_mb", 0.0)) for i in infos),
            "train_rss_delta_mb": max(float(i.get("train_rss_delta_mb", 0.0)) for i in infos),
            "memory_method": "members' maximum", "steps": sum(int(i.get("steps", 0)) for i in infos),
            "best_step": None, "best_validation": {}, "select_metric": infos[0].get("select_metric"),
            "device": infos[0].get("device"), "threads": infos[0].get("threads")}


def _copy_member(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for name in MEMBER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    if (src / "members").is_dir():  # a member that is itself an ensemble
        shutil.copytree(src / "members", dst / "members")


def _write_folder(tmp: Path, members: Sequence[FinetunedRun], method: str, weights: list[float],
                  metric: str | None) -> dict[str, Any]:
    """Fill the ensemble folder; returns ensemble.json's content (without the evaluation)."""
    first = members[0]
    for i, m in enumerate(members):
        _copy_member(m.path, tmp / "members" / str(i))
    for name in ("config.yaml", "tokenizer.json", "labels.txt"):
        if (first.path / name).is_file():
            shutil.copyfile(first.path / name, tmp / name)
    (tmp / "data").mkdir()
    files = {}
    for split, rel in first.info["files"].items():
        shutil.copyfile(first.path / rel, tmp / "data" / Path(rel).name)
        files[split] = f"data/{Path(rel).name}"
    info = {k: first.info[k] for k in SHARED_INFO if k in first.info}
    write_text(tmp / FINETUNE_INFO, json.dumps({**info, **training_summary(members), "files": files,
                                                "ensemble": ENSEMBLE_INFO}, indent=1))
    return {"method": method, "members": [f"members/{i}" for i in range(len(members))], "weights": weights,
            "weight_metric": metric, "sources": [str(m.path) for m in members]}


def score_runs(runs: Sequence[FinetunedRun], data_from: FinetunedRun, split: str, show: bool
               ) -> tuple[list[dict], int]:
    """Metrics of each run on ``data_from``'s copy of ``split`` (one encoding, shared by all), and its size."""
    data = finetuned_task_data(data_from, split)
    scored = [score_outputs(task_outputs(r.model, data, split))
              for r in progress(runs, desc=f"scoring {split}", unit="run", enabled=show)]
    return scored, len(data.features[split])


def build_ensemble(paths: Sequence[str | Path], method: str, out: str | Path, *, split: str = "test",
                   weight_metric: str | None = None, show: bool = True) -> dict[str, Any]:
    """Write the ensemble run directory ``out`` and score it and every member on ``split``; returns
    ensemble.json's content (with ``evaluation``: split, examples, members' and the ensemble's metrics).
    Image-classification runs go to ``tune.image_ensemble`` (``weight_metric`` null: f1_macro / accuracy)."""
    if method not in ENSEMBLE_METHODS:
        raise ConfigError(f"--method: {method!r} is not one of {', '.join(ENSEMBLE_METHODS)}")
    if split not in ("validation", "test"):
        raise ConfigError(f"--split: {split!r} is not one of validation, test")
    image = [(Path(p) / VISION_INFO).is_file() for p in paths]
    if any(image):
        if not all(image):
            raise CheckpointError(f"{paths[image.index(False)]}: a text run next to the image run "
                                  f"{paths[image.index(True)]}; an ensemble's members are all image or all text runs")
        return build_image_ensemble(paths, method, out, split=split, weight_metric=weight_metric or "accuracy",
                                    show=show)
    weight_metric = weight_metric or "f1_macro"
    members = load_members(paths)
    weights = member_weights(members, method, weight_metric)
    with staged_dir(out) as tmp:
        content = _write_folder(tmp, members, method, weights, weight_metric if method == "weighted" else None)
        write_text(tmp / ENSEMBLE_INFO, json.dumps(content, indent=1))
        ensemble = load_finetuned(tmp)
        (*member_metrics, ens_metrics), examples = score_runs([*members, ensemble], ensemble, split, show)
        content["evaluation"] = evaluation_record(members, member_metrics, ens_metrics, split, examples)
        write_text(tmp / ENSEMBLE_INFO, json.dumps(content, indent=1))
    content["out"] = str(out)
    return content

