"""Atomic, resumable checkpoints in safetensors + JSON (nothing is pickled).

Layout::

    checkpoints/step_000200/
        model.safetensors       weights (tied tensors stored once)
        optimizer.safetensors   optimizer state tensors + RNG states
        state.json              step, trainer state, optimizer hyperparameters, data position
        <extra>.safetensors     optional named tensor sets (a fine-tune's best weights: best.safetensors)

A checkpoint is written into ``checkpoints/.tmp-step_000200``, every file is
fsynced, then the folder is renamed. A crash at any point leaves either no
new checkpoint or a complete one; earlier checkpoints are untouched. Old
checkpoints beyond ``keep_last`` are removed only after the new one exists.
(Re-saving an existing step moves the old folder aside before the rename; a
crash in that instant loses only that step, never an earlier one.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, save_model
from torch import nn

from fromzero.atomic import disk_full_as_error, fsync_dir
from fromzero.errors import CheckpointError
from fromzero.runs import load_weights

_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def list_checkpoints(ckpt_dir: str | Path) -> list[Checkpoint]:
    """Complete checkpoints in ``ckpt_dir``, oldest first (temp folders are ignored)."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = []
    for child in ckpt_dir.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / "state.json").is_file():
            found.append(Checkpoint(child, int(match.group(1))))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(ckpt_dir: str | Path) -> Checkpoint | None:
    found = list_checkpoints(ckpt_dir)
    return found[-1] if found else None


def remove_stale_temps(ckpt_dir: str | Path) -> None:
    """Delete half-written ``.tmp-*`` folders left by a crash during a save."""
    ckpt_dir = Path(ckpt_dir)
    if ckpt_dir.is_dir():
        for child in [*ckpt_dir.glob(".tmp-*"), *ckpt_dir.glob(".old-*")]:
            shutil.rmtree(child, ignore_errors=True)


def _optimizer_tensors(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able structure."""
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            key = f"state.{idx}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                       meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _rng_tensors() -> dict[str, torch.Tensor]:
    rng = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"rng.cuda.{i}"] = s
    return rng


def restore_rng_states(tensors: dict[str, torch.Tensor], rank: int = 0) -> None:
    """Set this process's RNG states from a checkpoint's: rank ``rank``'s own where the run that wrote it
    had that rank (``rng.torch.rank<r>``, ``rng.cuda.rank<r>``), else the one process's (``rng.torch``)."""
    own = tensors.get(f"rng.torch.rank{rank}")
    torch.set_rng_state(tensors["rng.torch"] if own is None else own)
    if own is None and rank > 0:  # a rank the saving run did not have: its own stream, derived from rank 0's
        torch.manual_seed(int(torch.randint(2**62, (1,))) + rank)
    if f"rng.cuda.rank{rank}" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors[f"rng.cuda.rank{rank}"])
        return
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.") and "rank" not in k]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def rank_rng_tensors(rank: int) -> dict[str, torch.Tensor]:
    """This rank's RNG states under per-rank names (a multi-process checkpoint holds every rank's)."""
    rng = {f"rng.torch.rank{rank}": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng[f"rng.cuda.rank{rank}"] = torch.cuda.get_rng_state()
    return rng


def _cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def save_checkpoint(ckpt_dir: str | Path, step: int, model: nn.Module,
                    optimizer: torch.optim.Optimizer | dict[str, Any], state: dict[str, Any], keep_last: int = 0, *,
                    weights: dict[str, torch.Tensor] | None = None,
                    extras: dict[str, dict[str, torch.Tensor]] | None = None,
                    rng: dict[str, torch.Tensor] | None = None) -> Checkpoint:
    """Write checkpoint ``step`` atomically; then prune to the ``keep_last`` newest (0 keeps all).

    ``weights`` replaces the whole model in ``model.safetensors`` (a fine-tune stores only its trainable
    tensors: the frozen ones are rebuilt from the base run); each ``extras[name]`` becomes
    ``name.safetensors`` in the same folder, so it is written (or not) atomically with the rest.
    ``optimizer`` may be an optimizer or its state dict (a sharded one gathered by rank 0); ``rng``
    replaces this process's RNG states (a multi-process run stores every rank's).
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step_{step:06d}"
    tmp = ckpt_dir / f".tmp-step_{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    with disk_full_as_error(ckpt_dir, f"checkpoint step {step}"):
        try:
            tmp.mkdir()
            if weights is None:
                save_model(model, str(tmp / "model.safetensors"))
            else:
                save_file(_cpu_tensors(weights), str(tmp / "model.safetensors"))
            for name, tensors in (extras or {}).items():
                if name in ("model", "optimizer"):
                    raise ValueError(f"checkpoint extra {name!r} would overwrite {name}.safetensors")
                save_file(_cpu_tensors(tensors), str(tmp / f"{name}.safetensors"))
            opt_sd = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
            opt_tensors, opt_meta = _optimizer_tensors(opt_sd)
            save_file({**opt_tensors, **(rng if rng is not None else _rng_tensors())},
                      str(tmp / "optimizer.safetensors"))
            payload = {"format_version": 1, "step": step, "optimizer": opt_meta, **state}
            (tmp / "state.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
            for f in tmp.iterdir():
                _fsync_file(f)
            fsync_dir(tmp)
            old = ckpt_dir / f".old-step_{step:06d}"
            if final.exists():  # re-saving a step (e.g. after a resume): move the old one aside first
                shutil.rmtree(old, ignore_errors=True)
                os.rename(final, old)
            os.rename(tmp, final)
            fsync_dir(ckpt_dir)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    prune_checkpoints(ckpt_dir, keep_last)
    return Checkpoint(final, step)


def prune_checkpoints(ckpt_dir: Path, keep_last: int) -> None:
    """Remove all but the ``keep_last`` newest checkpoints (0 keeps all); called after a save succeeded."""
    if keep_last > 0:
        for old in list_checkpoints(ckpt_dir)[:-keep_last]:
            shutil.rmtree(old.path, ignore_errors=True)


def load_checkpoint(ckpt: Checkpoint, model: nn.Module | None, optimizer: torch.optim.Optimizer | None = None,
                    restore_rng: bool = True, rank: int = 0) -> dict[str, Any]:
    """Load weights (and optimizer + RNG state) from ``ckpt``; return its state.json payload.

    ``model`` None skips the weights (a caller that saved its own ``weights=`` loads them itself, e.g.
    with :func:`load_checkpoint_tensors`). ``rank``: whose RNG state to restore (see :func:`restore_rng`).
    """
    try:
        payload = json.loads((ckpt.path / "state.json").read_text(encoding="utf-8"))
        if model is not None:
            load_weights(model, ckpt.path / "model.safetensors", "the recipe's model section",
                         fix=f"resume from an older checkpoint by deleting {ckpt.path}")
        if optimizer is not None or restore_rng:
            tensors = load_file(str(ckpt.path / "optimizer.safetensors"))
            if optimizer is not None:
                _restore_optimizer(optimizer, tensors, payload["optimizer"])
            if restore_rng:
                restore_rng_states(tensors, rank)
    except (OSError, json.JSONDecodeError, SafetensorError, KeyError) as err:
        raise CheckpointError(f"{ckpt.path}: unreadable checkpoint ({err}); resume from an older one "
                              "by deleting this folder") from None
    return payload


def load_checkpoint_tensors(ckpt: Checkpoint, name: str) -> dict[str, torch.Tensor] | None:
    """The tensors of ``ckpt``'s ``name.safetensors`` (``model`` or an extra), or None if it has no such file."""
    path = ckpt.path / f"{name}.safetensors"
    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint file ({err}); resume from an older checkpoint "
                              f"by deleting {ckpt.path}") from None
