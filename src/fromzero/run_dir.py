"""Read a run directory: the unit users pass around.

    run_dir/config.yaml        resolved recipe (model fields spelled out)
    run_dir/tokenizer.json     Hugging Face tokenizers file
    run_dir/model.safetensors  final weights (else the latest checkpoint's)
    run_dir/checkpoints/       resumable checkpoints
    run_dir/data/              token shards the run trained on (train.bin, val.bin, meta.json)
    run_dir/metrics.jsonl, tensorboard/, plots/, summary.json, eval.json

Everything that consumes a trained model (generate, eval, info, serve,
export) goes through :func:`load_run`. A supervised fine-tuning run
(``fromzero finetune`` with ``task.kind: sft``) is one too: its config.yaml
is the fine-tuning recipe, and its model (family and config) is read from
its finetune.json; the weights keep the plain model's parameter names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_model
from torch import nn

from fromzero.config import load_yaml
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import CheckpointError, ConfigError
from fromzero.models import build_model, model_config


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    model_config: Any
    model: nn.Module | None
    tokenizer: Tokenizer
    weights: Path | None


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


def load_weights(model: nn.Module, weights: Path, described_by: str, device: str = "cpu") -> None:
    """Load a safetensors file into ``model`` strictly: a missing or extra tensor is a CheckpointError."""
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=device)
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{weights}: missing or unreadable weights ({err})") from None
    if missing or unexpected:
        raise CheckpointError(f"{weights}: weights do not match {described_by} (missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]})")


def sft_model_section(path: Path) -> dict[str, Any] | None:
    """An SFT run's model section (``name``: its family, plus the config fields) from finetune.json, else None."""
    info_file = path / "finetune.json"
    if not info_file.is_file():
        return None
    info = json.loads(info_file.read_text())
    if info.get("kind") != "sft":
        return None
    return {"name": info["family"], **info["model"]}


def load_run(run_dir: str | Path, *, with_weights: bool = True, device: str = "cpu") -> Run:
    """Load config, tokenizer and (optionally) the trained model of a run directory."""
    path = Path(run_dir)
    if not (path / "config.yaml").is_file():
        raise CheckpointError(f"{path}: not a run directory (no config.yaml); pass the folder given by "
                              "`fromzero pretrain --out`")
    config = load_yaml(path / "config.yaml")
    section = dict(config.get("model") or sft_model_section(path) or {})
    name = section.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"{path / 'config.yaml'}: model.name is missing")
    cfg = model_config(name, section, file=str(path / "config.yaml"))
    if not (path / "tokenizer.json").is_file():
        raise CheckpointError(f"{path}: tokenizer.json is missing; the run directory is incomplete")
    tokenizer = Tokenizer.load(path / "tokenizer.json")
    model, weights = None, None
    if with_weights:
        weights = find_weights(path)
        if weights is None:
            raise CheckpointError(f"{path}: no model.safetensors and no checkpoint; train it first")
        model = build_model(cfg)
        load_weights(model, weights, "config.yaml", device)
        model.to(device).eval()
    return Run(path, config, cfg, model, tokenizer, weights)
