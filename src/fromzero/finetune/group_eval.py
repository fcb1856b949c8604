"""``fromzero eval RUN --group-by FIELD``: a fine-tuned classifier's test metrics per group of one extra field.

The run's own test copy (or ``--data FILE``) is predicted as ``fromzero eval`` does; each example's group is
the value of ``FIELD`` on its line of the file (``data.task_data.read_field``). The scores per group and the
gaps (``eval.group_metrics``) go into eval.json's ``groups`` entry, and the run's report.html is rewritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fromzero.data.task_data import read_field
from fromzero.errors import ConfigError
from fromzero.eval.eval_file import update_eval_file
from fromzero.eval.group_metrics import group_metrics
from fromzero.eval.metrics import classification_metrics
from fromzero.finetune.evaluate import load_finetuned
from fromzero.finetune.predict import task_outputs
from fromzero.finetune.task_dataset import decoder_start_id, load_task_data
from fromzero.runs import VISION_INFO, is_finetune_run
from fromzero.runs.report import write_report

GROUPS_KEY = "groups"


def check_groupable(run_dir: str | Path, field: str) -> None:
    """A one-line error unless ``run_dir`` is a fine-tuned single-label text classifier (before any work)."""
    path = Path(run_dir)
    if not is_finetune_run(path):
        what = "an image run" if (path / VISION_INFO).is_file() else "not a fine-tuned run"
        raise ConfigError(f"--group-by {field}: {path} is {what}; per-group metrics need a run fine-tuned for "
                          "sequence classification (`fromzero finetune`)")
    from fromzero.runs import read_run_json

    info = read_run_json(path / "finetune.json")
    if info.get("kind") != "sequence_classification" or info.get("problem", "single_label") != "single_label":
        raise ConfigError(f"--group-by {field}: {path} is a {info.get('kind')} ({info.get('problem')}) run; per-group "
                          "metrics need single-label sequence classification")


def evaluate_groups(run_dir: str | Path, field: str, data_file: str | None = None, batch_size: int = 64,
                    progress: bool = True) -> dict[str, Any]:
    """Score the test split (or ``data_file``) per value of ``field``; writes eval.json's ``groups``; returns it."""
    check_groupable(run_dir, field)
    run = load_finetuned(run_dir)
    source = data_file or str(run.path / run.info["files"]["test"])
    groups_by_line = read_field(source, field, run.recipe.task.format)  # before the model runs: fail fast
    data = load_task_data(run.recipe.task, run.tokenizer, run.vocab, splits=("test",), paths={"test": source},
                          decoder_start_id=decoder_start_id(run.model))
    out = task_outputs(run.model, data, "test", batch_size, progress=progress)
    groups = []
    for example in data.examples["test"]:
        if example.where not in groups_by_line:  # both readers number the same lines: a miss is a bug, not input
            raise RuntimeError(f"{example.where}: read_field and the task reader disagree on this line")
        groups.append(groups_by_line[example.where])
    names = list(out.label_names or [])
    entry = {"field": field, "source": source if data_file else "test",
             **group_metrics(out.y_true, out.y_pred, groups, names)}
    overall = classification_metrics(out.y_true, out.y_pred)
    entry["overall"] = {"examples": len(out.y_true), "accuracy": overall["accuracy"],
                        "f1_macro": overall["f1_macro"]}
    update_eval_file(run.path, {GROUPS_KEY: entry})
    write_report(run.path)
    return entry
