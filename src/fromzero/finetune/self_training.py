"""Self-training: train on the labeled set, pseudo-label an unlabeled pool, retrain (``fromzero self-train``).

    out/round_0/                 fine-tuned on the recipe's labeled train file only
    out/round_<r>/               retrained from the same base on labeled + every pseudo label so far
    out/data/train_round_<r>.jsonl   the training file of round r (labeled rows, then pseudo-labeled rows)
    out/self_training.json       the config and, per round: added, cumulative, pseudo-label accuracy
                                 against gold (when the pool has labels), validation and test metrics

The unlabeled pool is JSONL with the recipe's text field (and pair field, if any); a gold label under
the recipe's label field is used only to report pseudo-label accuracy, never for training. A row keeps
the pseudo label of the round that took it. Rounds stop early when no row passes the threshold.
Single-label sequence classification with a JSONL train file only.

A round predicts class probabilities for the pool; :func:`select_pseudo_labels`
keeps the rows whose top probability reaches ``threshold`` (rows already taken in an
earlier round are skipped), highest confidence first, optionally balanced across the
predicted classes and capped at ``max_per_round``. :func:`round_report` counts what was
added and, where gold labels are known, how many pseudo labels were right.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from fromzero.atomic import require_new_folder, write_text
from fromzero.config import field, require
from fromzero.data.augment_text import read_text_rows
from fromzero.errors import ConfigError
from fromzero.eval.task_metrics import Scorer, score_outputs
from fromzero.finetune.evaluate import finetuned_task_data, load_finetuned
from fromzero.finetune.predict import task_outputs
from fromzero.finetune.recipe import load_finetune_recipe
from fromzero.finetune.runner import FinetuneResult, finetune
from fromzero.finetune.task_dataset import load_task_data

REPORT_FILE = "self_training.json"


@dataclass(frozen=True)
class SelfTrainingConfig:
    """How many rounds, and which predictions become pseudo labels."""

    rounds: int = field(3, help="retraining rounds after the labeled-only run")
    threshold: float = field(0.9, help="minimum top-class probability for a pseudo label")
    max_per_round: int | None = field(None, help="most pseudo labels one round adds (null: no cap)")
    per_class_balance: bool = field(False, help="every predicted class adds as many rows as the rarest one")

    def __post_init__(self) -> None:
        require(self.rounds >= 1, "rounds", f"must be >= 1, got {self.rounds}")
        require(0.0 <= self.threshold <= 1.0, "threshold", f"must be in [0, 1], got {self.threshold}")
        require(self.max_per_round is None or self.max_per_round >= 1, "max_per_round",
                f"must be >= 1 or null, got {self.max_per_round}")


def select_pseudo_labels(probs: torch.Tensor, threshold: float, max_per_round: int | None = None,
                         already_taken: torch.Tensor | None = None, *, per_class_balance: bool = False
                         ) -> tuple[list[int], list[int], list[float]]:
    """Rows of ``probs`` (N, C) to pseudo-label: (indices, predicted classes, confidences), most confident first.

    A row qualifies when its top probability is >= ``threshold`` and ``already_taken`` (N bools) is not set.
    ``per_class_balance`` keeps, for every predicted class, only as many rows as the class with the fewest
    qualifying rows has (each class's most confident ones); ``max_per_round`` then caps the total. Ties in
    confidence keep row order.
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be (N, C), got shape {tuple(probs.shape)}")
    conf, pred = probs.float().max(dim=-1)
    ok = conf >= threshold
    if already_taken is not None:
        ok &= ~already_taken.bool()
    rows = torch.nonzero(ok).flatten().tolist()
    rows.sort(key=lambda i: -float(conf[i]))  # stable: equal confidences keep file order
    if per_class_balance and rows:
        by_class: dict[int, list[int]] = {}
        for i in rows:
            by_class.setdefault(int(pred[i]), []).append(i)
        keep = min(len(v) for v in by_class.values())
        kept = {i for v in by_class.values() for i in v[:keep]}
        rows = [i for i in rows if i in kept]
    if max_per_round is not None:
        rows = rows[:max_per_round]
    return rows, [int(pred[i]) for i in rows], [float(conf[i]) for i in rows]


def round_report(indices: Sequence[int], labels: Sequence[int], gold: Sequence[int | None]) -> dict:
    """``added``: pseudo labels this round; ``accuracy``: share matching ``gold[index]`` over the rows whose
    gold is known (None when none is); ``with_gold``: how many rows that share counts."""
    known = [(y, gold[i]) for i, y in zip(indices, labels, strict=True) if gold[i] is not None]
    accuracy = sum(y == g for y, g in known) / len(known) if known else None
    return {"added": len(indices), "with_gold": len(known), "accuracy": accuracy}


def _pool_probs(run_dir: Path, pool: list[dict[str, Any]], work: Path) -> tuple[torch.Tensor, list[str]]:
    """Class probabilities (N, C) of a fine-tuned run on the pool, and its label names."""
    run = load_finetuned(run_dir)
    task, names = run.recipe.task, run.vocab.labels
    # encoded like any split: a placeholder label (the first class) that the probabilities ignore
    rows = [{task.text_field: r[task.text_field], task.label_field: names[0],
             **({task.pair_field: r[task.pair_field]} if r.get(task.pair_field) else {})} for r in pool]
    write_text(work, "".join(json.dumps(r) + "\n" for r in rows))
    data = load_task_data(task, run.tokenizer, run.vocab, splits=("test",), paths={"test": str(work)})
    return torch.tensor(task_outputs(run.model, data, "test").scores), names


def _test_metrics(run_dir: Path, scorer: Scorer) -> dict[str, float]:
    """``scorer``'s metrics of a fine-tuned run on its own copy of the test split."""
    run = load_finetuned(run_dir)
    return scorer(task_outputs(run.model, finetuned_task_data(run, "test"), "test"))


def _round_entry(result: FinetuneResult, scorer: Scorer) -> dict[str, Any]:
    """A round's run directory, steps, best validation metrics and test metrics."""
    return {"run_dir": str(result.run_dir), "steps": result.info["steps"],
            "validation": result.info["best_validation"], "test": _test_metrics(result.run_dir, scorer)}


def self_train(recipe_path: str | Path | None, unlabeled_path: str | Path, cfg: SelfTrainingConfig, *,
               scorer: Scorer = score_outputs, out: str | Path | None = None, overrides: list[str] | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Run round 0 (labeled only) and up to ``cfg.rounds`` pseudo-labeling rounds; write and return the report."""
    overrides = list(overrides or [])
    recipe = load_finetune_recipe(recipe_path, overrides)
    task = recipe.task
    if task.kind != "sequence_classification" or task.problem != "single_label":
        raise ConfigError("self-training needs task.kind sequence_classification with problem single_label")
    if (task.format or Path(task.train).suffix.lower().lstrip(".")) not in ("jsonl", "json"):
        raise ConfigError(f"task.train: self-training extends a JSONL training file, got {task.train}")
    unlabeled = Path(unlabeled_path)
    if not unlabeled.is_file():
        raise ConfigError(f"--unlabeled: {unlabeled} not found")
    root = Path(out or recipe.out or Path("runs") / f"{Path(recipe_path or 'finetune').stem}_self_training")
    if root.is_dir() and (root / REPORT_FILE).exists():
        raise ConfigError(f"{root} already holds a self-training run; choose another --out or delete it")
    require_new_folder(root, "choose another --out or delete this one")
    pool = read_text_rows(unlabeled, recipe.task.text_field)  # each with a non-empty text (else file:line)
    labeled = Path(task.train).read_text(encoding="utf-8-sig").rstrip("\n") + "\n"

    result = finetune(recipe_path, overrides, scorer=scorer, out=root / "round_0", progress=progress)
    first = {"round": 0, "added": 0, "with_gold": 0, "accuracy": None, "cumulative": 0,
             "cumulative_accuracy": None, "min_confidence": None, "train_file": task.train}
    report: dict[str, Any] = {"config": asdict(cfg), "out": str(root), "unlabeled": str(unlabeled),
                              "pool_size": len(pool), "rounds": [{**first, **_round_entry(result, scorer)}]}
    taken = torch.zeros(len(pool), dtype=torch.bool)
    pseudo_lines: list[str] = []
    cumulative_right, cumulative_gold = 0, 0
    for r in range(1, cfg.rounds + 1):
        probs, names = _pool_probs(result.run_dir, pool, root / "data" / "pool.jsonl")
        index = {x: i for i, x in enumerate(names)}
        gold = [index.get(str(row[task.label_field]).strip()) if task.label_field in row else None for row in pool]
        rows, labels, conf = select_pseudo_labels(probs, cfg.threshold, cfg.max_per_round, taken,
                                                  per_class_balance=cfg.per_class_balance)
        stats = round_report(rows, labels, gold)
        if not rows:
            report["stopped"] = f"round {r}: no unlabeled row reached threshold {cfg.threshold}"
            break
        taken[rows] = True
        for i, y in zip(rows, labels, strict=True):
            row = {task.text_field: pool[i][task.text_field], task.label_field: names[y]}
            if pool[i].get(task.pair_field):
                row[task.pair_field] = pool[i][task.pair_field]
            pseudo_lines.append(json.dumps(row) + "\n")
        cumulative_right += sum(gold[i] == y for i, y in zip(rows, labels, strict=True))
        cumulative_gold += stats["with_gold"]
        train_file = root / "data" / f"train_round_{r}.jsonl"
        write_text(train_file, labeled + "".join(pseudo_lines))
        result = finetune(recipe_path, [*overrides, f"--task.train={train_file}"], scorer=scorer,
                          out=root / f"round_{r}", progress=progress)
        report["rounds"].append({
            "round": r, **stats, "cumulative": int(taken.sum()),
            "cumulative_accuracy": cumulative_right / cumulative_gold if cumulative_gold else None,
            "min_confidence": min(conf), "train_file": str(train_file), **_round_entry(result, scorer)})
        write_text(root / REPORT_FILE, json.dumps(report, indent=1))
    write_text(root / REPORT_FILE, json.dumps(report, indent=1))
    return report
