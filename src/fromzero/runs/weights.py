"""Where a run directory's weights are, and loading them strictly into a built model."""

from __future__ import annotations

import re
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model
from torch import nn

from fromzero.errors import CheckpointError


def find_weights(run_dir: Path) -> Path | None:
    """model.safetensors, else the newest complete checkpoint's weights."""
    final = run_dir / "model.safetensors"
    if final.is_file():
        return final
    steps = []
    for child in (run_dir / "checkpoints").glob("step_*"):
        if re.fullmatch(r"step_\d+", child.name) and (child / "state.json").is_file():
            steps.append((int(child.name[5:]), child / "model.safetensors"))
    return max(steps)[1] if steps else None


def check_shapes(model: nn.Module, weights: Path, described_by: str, fix: str = "") -> None:
    """Every tensor of a safetensors file has its parameter's shape in ``model``; the first that does not (in
    the model's order) is a one-line CheckpointError naming it, both shapes, the file and ``described_by``."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            stored = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{weights}: missing or unreadable weights ({err}){'; ' + fix if fix else ''}") \
            from None
    for name, tensor in model.state_dict().items():
        if name in stored and stored[name] != tuple(tensor.shape):
            raise CheckpointError(f"{weights}: tensor {name} has shape {stored[name]} in the file but "
                                  f"{tuple(tensor.shape)} in the model built from {described_by}; the two disagree "
                                  f"(was {described_by} edited?)")


def load_weights(model: nn.Module, weights: Path, described_by: str, device: str = "cpu", fix: str = "") -> None:
    """Load a safetensors file into ``model`` strictly: a missing or extra tensor, or a tensor of another
    shape, is a CheckpointError (``fix``, if given, ends an unreadable file's message)."""
    check_shapes(model, weights, described_by, fix)
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=device)
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{weights}: missing or unreadable weights ({err}){'; ' + fix if fix else ''}") \
            from None
    if missing or unexpected:
        raise CheckpointError(f"{weights}: weights do not match {described_by} (missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}); was {described_by} changed?")
