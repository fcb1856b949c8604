"""Scoring a fine-tuned run directory on its own test copy: what ``fromzero eval RUN`` does on a fine-tune.

:func:`evaluate_finetuned_run` loads the run, predicts its test split
(``finetune.predict``), scores it with the metric libraries
(``eval.task_metrics``) and (re)writes ``eval.json``'s ``test`` entry, with
a confusion-matrix PNG (single-label classification), the test translations
in ``samples_test.tsv`` (seq2seq), or the replies in ``samples_test.jsonl``
plus the majority-reply and zero-shot baselines (sft). So ``fromzero eval``
on a fine-tuned run reproduces what ``fromzero finetune`` wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.errors import CheckpointError
from fromzero.eval.eval_file import update_eval_file
from fromzero.eval.metrics import confusion, plot_confusion_matrix
from fromzero.eval.sft_metrics import majority_outputs, sft_metrics
from fromzero.eval.task_metrics import score_outputs
from fromzero.eval.task_outputs import TaskOutputs
from fromzero.finetune.predict import task_outputs
from fromzero.finetune.recipe import FinetuneRecipe, load_finetune_recipe
from fromzero.finetune.sft import write_samples
from fromzero.finetune.task_dataset import TaskData, decoder_start_id, load_task_data
from fromzero.runs import Run, load_run
from fromzero.runs.report import write_report

CONFUSION_PNG = "plots/confusion_test.png"
SAMPLES_TSV = "samples_test.tsv"
SFT_SAMPLES = "samples_test.jsonl"
# finetune.json entries that eval.json repeats under "training"
TRAINING_KEYS = ("method", "trainable_parameters", "total_parameters", "trainable_percent", "peak_rss_mb",
                 "train_rss_delta_mb", "memory_method", "train_wall_s", "steps", "best_step", "best_validation")


@dataclass
class FinetunedRun(Run):
    """A fine-tuned run directory loaded back (``runs.Run``: model with its head, tokenizer, labels) and its
    parsed recipe."""

    recipe: FinetuneRecipe | None = None


def load_finetuned(run_dir: str | Path, device: str = "cpu") -> FinetunedRun:
    """Load a fine-tuned run directory (``runs.load_run``) and parse its recipe."""
    run = load_run(run_dir, device=device)
    if not run.finetuned:
        raise CheckpointError(f"{run.path}: not a fine-tuned run (no finetune.json); pass a folder written by "
                              "`fromzero finetune`")
    recipe = load_finetune_recipe(run.path / "config.yaml")
    return FinetunedRun(**{f.name: getattr(run, f.name) for f in fields(run)}, recipe=recipe)


def finetuned_task_data(run: FinetunedRun, split: str = "test") -> TaskData:
    """The run's own copy of ``split`` (validation or test), encoded with the run's tokenizer and labels."""
    files = {s: str(run.path / f) for s, f in run.info["files"].items()}
    return load_task_data(run.recipe.task, run.tokenizer, run.vocab, splits=(split,), paths=files,
                          decoder_start_id=decoder_start_id(run.model))


def _confusion(run_path: Path, out: TaskOutputs) -> dict[str, Any]:
    if out.kind != "sequence_classification" or out.problem != "single_label":
        return {}
    ids = list(range(len(out.label_names)))
    matrix = confusion(out.y_true, out.y_pred, ids)
    plot_confusion_matrix(matrix, out.label_names, run_path / CONFUSION_PNG, title=f"{run_path.name}: test")
    return {"confusion_matrix": matrix, "labels": out.label_names, "confusion_png": CONFUSION_PNG}


def _samples(run_path: Path, out: TaskOutputs) -> dict[str, Any]:
    """seq2seq: write source, reference and output of every example as a TSV with a header."""
    if out.kind != "seq2seq":
        return {}
    flat = [(" ".join(s.split()), " ".join(r.split()), " ".join(h.split()))  # no tab or newline inside a cell
            for s, r, h in zip(out.sources, out.y_true, out.y_pred, strict=True)]
    write_text(run_path / SAMPLES_TSV, "source\treference\thypothesis\n" + "".join("\t".join(row) + "\n"
                                                                                  for row in flat))
    return {"samples": SAMPLES_TSV}


def sft_test_report(run_path: Path, info: dict[str, Any], out: TaskOutputs) -> dict[str, Any]:
    """Samples file plus baselines for eval.json's ``test`` entry of an SFT run."""
    write_samples(run_path / SFT_SAMPLES, out)
    baselines = {}
    if info.get("majority_reply"):
        baselines["majority"] = sft_metrics(majority_outputs(out, info["majority_reply"]))
    if info.get("base_test_metrics"):
        baselines["base_zero_shot"] = info["base_test_metrics"]
    return {"samples": SFT_SAMPLES, "baselines": baselines}


def evaluate_finetuned_run(run_dir: str | Path, batch_size: int = 64, progress: bool = True) -> dict[str, Any]:
    """Load a fine-tuned run, score its test split, and (re)write ``eval.json``'s ``test`` entry; returns it."""
    run = load_finetuned(run_dir)
    data = finetuned_task_data(run, "test")
    out = task_outputs(run.model, data, "test", batch_size, progress=progress)
    result = {"metrics": score_outputs(out), "examples": len(out.y_true), **_confusion(run.path, out),
              **_samples(run.path, out), "truncation": str(data.truncation["test"])}
    if out.kind == "sft":
        result.update(sft_test_report(run.path, run.info, out))
    training = {key: run.info[key] for key in TRAINING_KEYS if key in run.info}
    saved = update_eval_file(run.path, {"test": result, **({"training": training} if training else {})})
    write_report(run.path)  # report.html now with the test metrics and confusion matrix
    return saved
