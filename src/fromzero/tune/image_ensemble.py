"""``fromzero ensemble`` over image-classification runs: the same combination rules as for text classifiers
(``runs/ensemble.py``), one image run directory out.

Members must share class names (in order), channels and image size. Each is copied into ``OUT/members/<i>/``;
the first member's config.yaml, labels.txt and vision.json make the ensemble an image run, so ``fromzero eval``
and ``fromzero predict`` take it unchanged. The ensemble takes pixels normalised with the first member's
mean / std (a member trained with other statistics is re-normalised) and is scored on the first member's
split: members trained with other data options or seeds may have seen some of those images in training.

``weighted``: w_i = m_i / sum_j m_j, with m_i the member's best validation accuracy (vision.json; image runs
select on accuracy or loss, so ``accuracy`` is the only weight metric).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fromzero.atomic import write_text
from fromzero.data.datasets.image_sources import load_image_data
from fromzero.errors import CheckpointError, ConfigError
from fromzero.eval.image_metrics import classification_scores
from fromzero.progress import progress
from fromzero.runs import VISION_INFO, Run, load_run
from fromzero.runs.ensemble import ENSEMBLE_INFO, evaluation_record
from fromzero.staging import staged_dir
from fromzero.vision.evaluate import evaluate_image_run, test_batches
from fromzero.vision.recipe import load_vision_recipe

MATCH = ("class_names", "channels", "image_size")  # vision.json keys every member must share
MEMBER_FILES = ("config.yaml", VISION_INFO, "labels.txt", "model.safetensors", "compression.json", ENSEMBLE_INFO)


def load_image_members(paths: Sequence[str | Path]) -> list[Run]:
    """Load every member and check they can form an ensemble (one-line errors naming the run)."""
    if len(paths) < 2:
        raise ConfigError(f"ensemble: give at least two runs, got {len(paths)}")
    members = [load_run(p) for p in paths]
    first = members[0]
    for m in members:
        if m.kind != "image_classification":
            raise CheckpointError(f"{m.path}: a {m.kind} image run; `fromzero ensemble` combines "
                                  "image_classification runs (or single-label text classifiers)")
        for key in MATCH:
            if m.vision.get(key) != first.vision.get(key):
                raise CheckpointError(f"{m.path}: {key} {m.vision.get(key)} differs from {first.path}'s "
                                      f"{first.vision.get(key)}; members must share class names, channels and size")
    return members


def image_member_weights(members: Sequence[Run], method: str, metric: str) -> list[float]:
    """Uniform for mean and vote; proportional to the best validation accuracy for weighted."""
    if method != "weighted":
        return [1.0 / len(members)] * len(members)
    if metric != "accuracy":
        raise ConfigError(f"--weight-metric: {metric!r}: image runs are weighted by accuracy; pass "
                          "--weight-metric accuracy")
    values = []
    for m in members:
        best = m.vision.get("best_validation") or {}
        if "val_accuracy" not in best:
            raise CheckpointError(f"{m.path / VISION_INFO}: no best validation accuracy; use --method mean")
        values.append(float(best["val_accuracy"]))
    if sum(values) <= 0:
        raise CheckpointError(f"--weight-metric accuracy: the members' values {values} sum to 0; use --method mean")
    return [v / sum(values) for v in values]


def _write_folder(tmp: Path, members: Sequence[Run], content: dict[str, Any]) -> None:
    for i, m in enumerate(members):
        dst = tmp / "members" / str(i)
        dst.mkdir(parents=True)
        for name in MEMBER_FILES:
            if (m.path / name).is_file():
                shutil.copyfile(m.path / name, dst / name)
        if (m.path / "members").is_dir():  # a member that is itself an ensemble
            shutil.copytree(m.path / "members", dst / "members")
    first = members[0]
    for name in ("config.yaml", "labels.txt"):
        shutil.copyfile(first.path / name, tmp / name)
    infos = [m.vision for m in members]
    vision = {**first.vision, "parameters": sum(int(i.get("parameters", 0)) for i in infos),
              "steps": sum(int(i.get("steps", 0)) for i in infos), "best_step": None, "best_validation": {},
              "train_wall_s": sum(float(i.get("train_wall_s", 0.0)) for i in infos), "ensemble": ENSEMBLE_INFO}
    write_text(tmp / VISION_INFO, json.dumps(vision, indent=1))
    write_text(tmp / ENSEMBLE_INFO, json.dumps(content, indent=1))


def score_image_runs(runs: Sequence[Run], data_from: Run, split: str, show: bool) -> tuple[list[dict], int]:
    """Classification metrics of each run on ``data_from``'s ``split`` (normalised with its statistics)."""
    file = str(data_from.path / "config.yaml")
    recipe = load_vision_recipe(file)
    images = getattr(load_image_data(recipe.data, recipe.seed, file), split)
    batches = test_batches(data_from, recipe, images)
    scored = []
    with torch.no_grad():
        for r in progress(runs, desc=f"scoring {split}", unit="run", enabled=show):
            pred = torch.cat([r.model(batches.batch(i)["pixels"]).argmax(-1) for i in range(len(batches))])
            scored.append(classification_scores(images.labels.tolist(), pred.tolist(), images.class_names))
    return scored, len(images)


def build_image_ensemble(paths: Sequence[str | Path], method: str, out: str | Path, *, split: str = "test",
                         weight_metric: str = "accuracy", show: bool = True) -> dict[str, Any]:
    """``build_ensemble`` for image-classification runs: writes ``out``, scores it and each member on ``split``
    (and writes its eval.json / plots as ``fromzero eval`` would); returns ensemble.json's content."""
    members = load_image_members(paths)
    weights = image_member_weights(members, method, weight_metric)
    content = {"method": method, "members": [f"members/{i}" for i in range(len(members))], "weights": weights,
               "weight_metric": weight_metric if method == "weighted" else None,
               "sources": [str(m.path) for m in members]}
    with staged_dir(out) as tmp:
        _write_folder(tmp, members, content)
        ensemble = load_run(tmp)
        (*member_metrics, ens_metrics), examples = score_image_runs([*members, ensemble], ensemble, split, show)
        content["evaluation"] = evaluation_record(members, member_metrics, ens_metrics, split, examples)
        write_text(tmp / ENSEMBLE_INFO, json.dumps(content, indent=1))
    evaluate_image_run(out)  # eval.json and plots, as for any image run
    content["out"] = str(out)
    return content
