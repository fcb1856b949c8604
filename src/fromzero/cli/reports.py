"""Printing a fine-tuned run's test report (``fromzero finetune`` and ``fromzero eval`` print the same)."""

from __future__ import annotations

from pathlib import Path


def print_finetune_eval(run_dir: Path, saved: dict) -> None:
    """The test metrics, plots, samples and training cost from a fine-tuned run's eval.json entries."""
    test = saved["test"]
    print(f"{run_dir}: test split ({test['examples']:,} examples)")
    for key, value in test["metrics"].items():
        print(f"  {key:>18}: {value:.4f}")
    if "confusion_png" in test:
        print(f"  confusion matrix: {run_dir / test['confusion_png']}")
    for name, metrics in (test.get("baselines") or {}).items():  # sft runs
        print(f"  baseline {name}: exact_match {metrics['exact_match']:.4f}, f1 {metrics['f1']:.4f}")
    if "samples" in test:
        print(f"  prompts, references, generations: {run_dir / test['samples']}")
    training = saved.get("training") or {}
    if training:
        print(f"  {training['method']}: {training['trainable_parameters']:,} of {training['total_parameters']:,} "
              f"parameters trained ({training['trainable_percent']:.2f}%), peak RSS {training['peak_rss_mb']:.0f} "
              f"MiB (+{training['train_rss_delta_mb']:.0f} MiB in training), {training['train_wall_s']:.0f}s")
