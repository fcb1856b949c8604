"""Resumable fine-tuning: what a fine-tune's checkpoint holds, and which recipe changes a resume refuses.

A fine-tune's checkpoint (``run_dir/checkpoints/step_N/``, written by the Trainer with ``FinetuneHooks`` every
``train.ckpt_every`` steps, pruned to ``train.keep_last``) holds

    model.safetensors      the trainable tensors only (LoRA adapters, the head, unfrozen layers); the
                           frozen ones are rebuilt from the base run and the recipe on resume, so a LoRA
                           checkpoint is a few MB, not the whole backbone
    best.safetensors       the trainable tensors at the best evaluation so far (absent before the first);
                           the best step and value are the Trainer's state in state.json
    optimizer.safetensors  optimizer moments + RNG states; state.json: step (= data position), schedule

so a resumed run continues the exact trajectory of an uninterrupted one and keeps the same best
weights. A finished fine-tune deletes its ``checkpoints/`` folder once ``model.safetensors`` and
``finetune.json`` are written: those are the result, and the checkpoints exist only to survive an
interruption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fromzero.config import load_yaml
from fromzero.errors import CheckpointError
from fromzero.runs import FINETUNE_INFO as INFO_FILE
from fromzero.runs import require_resumable_run_dir

# Recipe sections a resumed fine-tune must share with the interrupted one: they decide the model
# (base, head, method: which tensors exist and train), the data and its order (task, seed) and what
# "best" means (select_metric). train.* and optim.* may change, as when resuming a pretraining run.
FROZEN_SECTIONS = ("base", "task", "method", "seed", "select_metric")


def _first_difference(old: Any, new: Any, key: str) -> str | None:
    """The dotted key of the first value that differs between two nested dicts (None if equal)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            found = _first_difference(old.get(k), new.get(k), f"{key}.{k}")
            if found:
                return found
        return None
    return None if old == new else key


def check_can_resume(run_dir: Path, recipe: dict[str, Any]) -> None:
    """Refuse to resume a run that never started or already finished, or when ``recipe`` (resolved, as
    saved) changes a :data:`FROZEN_SECTIONS` key of the run's ``config.yaml``; the one-line error names
    the key and both values."""
    require_resumable_run_dir(run_dir)
    config_path = run_dir / "config.yaml"
    if (run_dir / INFO_FILE).is_file():
        raise CheckpointError(f"{run_dir}: this fine-tune already finished ({INFO_FILE} is written); "
                              f"`fromzero eval {run_dir}` re-scores it, a new --out trains again")
    saved = load_yaml(config_path)
    for section in FROZEN_SECTIONS:
        key = _first_difference(saved.get(section), recipe.get(section), section)
        if key is not None:
            old, new = saved, recipe
            for part in key.split("."):
                old = old.get(part) if isinstance(old, dict) else None
                new = new.get(part) if isinstance(new, dict) else None
            raise CheckpointError(f"{config_path}: {key} was {old!r}, the recipe has {new!r}; a resumed fine-tune "
                                  "must keep base, task, method, seed and select_metric (change train.* / optim.* "
                                  "only), or start a new run with another --out")
