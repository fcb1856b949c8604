"""Write a compressed model as a run directory: the source run's files, new weights, one more compression step.

The output is what :func:`fromzero.runs.load_run` opens (see :mod:`fromzero.runs.compression`): the source's
config.yaml, tokenizer.json and, for a fine-tune, finetune.json, labels.txt and the validation/test copies
under data/ (so ``fromzero eval OUT`` scores the same test split); a pretraining run's data/ shards too (its
held-out split). Training history (checkpoints, metrics, plots, TensorBoard, eval.json) describes the source
model, not this one, and is left behind. The folder is filled beside OUT and renamed into place, so a failure
leaves nothing at OUT.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import save_model
from torch import nn

from fromzero.atomic import write_text
from fromzero.runs import Run, read_compression_info
from fromzero.runs.compression import COMPRESSION_INFO, FORMAT
from fromzero.staging import check_target, staged_dir

# the files and folders of a run that describe its model and data, not its training history
KEPT = ("config.yaml", "tokenizer.json", "finetune.json", "labels.txt", "source.json", "summary.json", "data")


def compression_steps(run_dir: str | Path) -> list[dict[str, Any]]:
    """The compression steps applied to a run, oldest first; [] for a run that was never compressed."""
    info = read_compression_info(run_dir)
    return list(info["steps"]) if info else []


def write_compression_info(folder: Path, source: Path, steps: list[dict[str, Any]]) -> None:
    """``folder``/compression.json: the run it came from and every step applied, oldest first."""
    record = {"format": FORMAT, "source": str(source), "steps": steps}
    write_text(folder / COMPRESSION_INFO, json.dumps(record, indent=1))


def check_output(out: str | Path) -> Path:
    """Refuse an OUT that is a file or a non-empty folder, before any work starts."""
    out = Path(out)
    check_target(out, force=False)
    return out


def _copy_run_files(source: Path, dest: Path) -> None:
    for name in KEPT:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        elif src.is_file():
            shutil.copy2(src, dest / name)


def write_compressed_run(source: Run, out: str | Path, model: nn.Module, step: dict[str, Any],
                         extra_files: dict[str, str] | None = None) -> Path:
    """Write ``model`` as a run directory at ``out``: ``source``'s files, its weights as model.safetensors,
    and compression.json = the source's steps + ``step``. ``extra_files`` maps file names to text written
    beside them (e.g. a sparsity report). Returns ``out``."""
    out = check_output(out)
    steps = [*compression_steps(source.path), step]
    with staged_dir(out) as tmp:
        _copy_run_files(source.path, tmp)
        save_model(model, str(tmp / "model.safetensors"))  # tied weights stored once, as training saves them
        write_compression_info(tmp, source.path, steps)
        for name, text in (extra_files or {}).items():
            write_text(tmp / name, text)
    return out
