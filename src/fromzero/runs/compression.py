"""What a compressed run directory adds, and how its model is rebuilt before its weights load.

A run written by ``fromzero compress`` (prune, quantize, distill) is a normal run directory plus
``compression.json``::

    {"format": 1, "source": "<the run it came from>", "steps": [{"op": "prune", ...}, ...]}

one step per command, in the order they were applied (prune -> distill -> quantize compose). Most steps
change only values (unstructured pruning zeroes weights; distillation trains a student), but two change the
model's *shape*: structured pruning removes attention heads and MLP neurons, and quantization replaces
``nn.Linear`` layers with :class:`fromzero.nn.quantized_linear.QuantizedLinear`. :func:`restore_structure`
replays those two on a freshly built model, so the saved tensors load strictly (every key, every shape) and
``eval``, ``generate`` and ``serve`` work on compressed runs through the same :func:`fromzero.runs.load_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fromzero.errors import CheckpointError
from fromzero.nn.quantized_linear import QuantizedLinear, replace_module
from fromzero.nn.shrink import keep_heads, keep_neurons

COMPRESSION_INFO = "compression.json"
FORMAT = 1
# steps that change no tensor shape or module type: nothing to replay
VALUE_STEPS = ("prune", "recover", "distill")


def _module(model: nn.Module, name: str, file: Path) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise CheckpointError(f"{file}: names module {name!r}, which this run's model does not have; the run "
                              "directory is damaged: compress the source run again") from None


def _restore_structured(model: nn.Module, step: dict[str, Any], file: Path) -> None:
    for name, kept in (step.get("heads") or {}).items():
        keep_heads(_module(model, name, file), torch.arange(int(kept)))
    for name, kept in (step.get("neurons") or {}).items():
        keep_neurons(_module(model, name, file), torch.arange(int(kept)))


def _restore_quantized(model: nn.Module, step: dict[str, Any], file: Path) -> None:
    for name in step.get("modules") or []:
        linear = _module(model, name, file)
        if not isinstance(linear, nn.Linear):
            raise CheckpointError(f"{file}: module {name!r} is a {type(linear).__name__}, not a linear layer; "
                                  "the run directory is damaged: quantize the source run again")
        replace_module(model, name, QuantizedLinear.empty(linear.in_features, linear.out_features,
                                                          linear.bias is not None, step["mode"],
                                                          step.get("group_size")))


def check_compression_info(info: Any, file: Path) -> list[dict[str, Any]]:
    """The steps of a parsed compression.json, checked for the parts :func:`restore_structure` reads."""
    if not isinstance(info, dict) or info.get("format") != FORMAT or not isinstance(info.get("steps"), list):
        raise CheckpointError(f"{file}: not a fromzero compression record (format {FORMAT} with a steps list); "
                              "the run directory is damaged: compress the source run again")
    for i, step in enumerate(info["steps"]):
        op = step.get("op") if isinstance(step, dict) else None
        if op not in (*VALUE_STEPS, "structured", "quantize"):
            raise CheckpointError(f"{file}: steps[{i}] has unknown op {op!r}; this fromzero knows prune, "
                                  "structured, quantize, recover and distill: upgrade fromzero or compress again")
    return info["steps"]


def restore_structure(model: nn.Module, info: dict[str, Any], file: Path) -> nn.Module:
    """Replay the shape-changing steps of ``info`` (a run's compression.json) on a freshly built ``model``,
    in place, so the run's saved tensors load strictly. Returns ``model``."""
    for step in check_compression_info(info, file):
        if step["op"] == "structured":
            _restore_structured(model, step, file)
        elif step["op"] == "quantize":
            _restore_quantized(model, step, file)
    return model


def quantized_step(info: dict[str, Any] | None) -> dict[str, Any] | None:
    """The quantize step of a run's compression record, or None when its weights are float."""
    return next((s for s in (info or {}).get("steps", []) if s.get("op") == "quantize"), None)
