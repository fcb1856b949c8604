"""Reading a Hugging Face checkpoint folder: config.json, the weights, and which model class it is.

Weights come from ``model.safetensors`` (single or sharded through ``model.safetensors.index.json``), else
``pytorch_model.bin`` through ``torch.load(weights_only=True)``: nothing is ever unpickled, and a file that
would need unpickling is refused with the way to convert it.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from fromzero.errors import CheckpointError
from fromzero.interop.hf_keymaps import ARCHITECTURES, DEFAULT_ARCHITECTURE, IMPORT_ALIASES
from fromzero.interop.keymap import Architecture


@dataclass
class Checkpoint:
    """A Hugging Face checkpoint folder, read: config, weights under full (canonical) names, model class."""

    path: Path
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    architecture: Architecture

    def has(self, name: str) -> bool:
        """Whether the weights hold ``name`` (a full HF name)."""
        return name in self.state

    def same(self, a: str, b: str) -> bool:
        """Whether two present tensors are equal (a tie stored twice)."""
        return a in self.state and b in self.state and torch.equal(self.state[a], self.state[b])

    def needs(self, part: str) -> bool:
        """Whether this class must hold the optional ``part`` (e.g. BertForPreTraining's NSP head)."""
        return self.architecture.needs(part)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or a CheckpointError saying what is wrong with it."""
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: {path.name} is missing; a Hugging Face checkpoint folder holds "
                              "config.json and the weights (as written by save_pretrained)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    """A .bin state dict through ``torch.load(weights_only=True)``: plain tensors only, never arbitrary objects."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only met an object it will not build: the file wants full unpickling
        raise CheckpointError(
            f"{path}: refused: this .bin is a pickle that needs more than plain tensors, and unpickling can run "
            f"code, so fromzero never does it; convert it where you trust the file, e.g. `python -c \"from "
            f"transformers import AutoModel; AutoModel.from_pretrained('{path.parent}').save_pretrained("
            f"'{path.parent}-safetensors')\"`, and import that folder") from None
    except Exception as err:  # RuntimeError, EOFError: a truncated or foreign file
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: unreadable PyTorch weights ({reason}); download it again or use the "
                              "checkpoint's model.safetensors") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a flat name -> tensor state dict")
    return state


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{path}: unreadable safetensors file ({err})") from None


def _sharded(index: Path, load: Any) -> dict[str, torch.Tensor]:
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: no weight_map")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if not (index.parent / shard).is_file():
            raise CheckpointError(f"{index.parent}: shard {shard} named in {index.name} is missing; download it again")
        state.update(load(index.parent / shard))
    return state


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder: safetensors (single or sharded) first, else PyTorch .bin (weights only)."""
    if (path / "model.safetensors").is_file():
        return _load_safetensors(path / "model.safetensors")
    if (path / "model.safetensors.index.json").is_file():
        return _sharded(path / "model.safetensors.index.json", _load_safetensors)
    if (path / "pytorch_model.bin").is_file():
        return _torch_load(path / "pytorch_model.bin")
    if (path / "pytorch_model.bin.index.json").is_file():
        return _sharded(path / "pytorch_model.bin.index.json", _torch_load)
    raise CheckpointError(f"{path}: no weights (model.safetensors, model.safetensors.index.json or "
                          "pytorch_model.bin); pass the folder save_pretrained wrote")


def find_architecture(config: Mapping[str, Any], where: str) -> Architecture:
    """The supported Hugging Face class named by ``architectures`` (else the default for ``model_type``)."""
    names = config.get("architectures") or []
    name = names[0] if names else DEFAULT_ARCHITECTURE.get(str(config.get("model_type")))
    name = IMPORT_ALIASES.get(name, name)
    if name not in ARCHITECTURES:
        known = ", ".join(sorted([*ARCHITECTURES, *IMPORT_ALIASES]))
        got = name or f"model_type {config.get('model_type')!r}"
        raise CheckpointError(f"{where}: unsupported architecture {got}; fromzero converts {known}")
    arch = ARCHITECTURES[name]
    model_type = config.get("model_type")
    if model_type is not None and model_type != arch.keymap.model_type:
        raise CheckpointError(f"{where}: config.json says model_type {model_type!r} but architecture {name}; "
                              "the config is inconsistent")
    return arch


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a Hugging Face checkpoint folder (config.json + weights); names are made canonical (full)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a folder; pass the folder holding config.json and the weights")
    config = read_json(path / "config.json")
    arch = find_architecture(config, str(path))
    raw = read_weights(path)
    state: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        name = arch.keymap.canonical(key)
        if name in state:
            raise CheckpointError(f"{path}: tensor {name!r} appears twice (with and without the base prefix)")
        state[name] = tensor
    return Checkpoint(path, config, state, arch)
