"""Run an exported ONNX model with ONNX Runtime on CPU: :class:`OnnxModel`, a session behind a call that takes
the same tensors as the PyTorch model and returns its logits as a torch tensor.

onnx and onnxruntime are optional dependencies (``pip install 'fromzero[onnx]'``); importing this module
does not need them, using it does.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from fromzero.errors import CheckpointError, ConfigError


def require_module(name: str) -> ModuleType:
    """Import ``name`` (onnx, onnxruntime, onnxruntime.quantization), or a one-line ConfigError saying how to
    install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"{name.split('.')[0]} is not installed; ONNX export needs it: "
                          "pip install 'fromzero[onnx]' (or pip install onnx onnxruntime)") from None


def ort_versions() -> dict[str, str]:
    """Versions of the libraries an export depends on, for its record."""
    return {"torch": torch.__version__, "onnx": require_module("onnx").__version__,
            "onnxruntime": require_module("onnxruntime").__version__}


def _as_int64(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "iub":
        raise ValueError(f"{name}: expected integer token ids or a 0/1 mask, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


class OnnxModel:
    """An ONNX Runtime session (CPUExecutionProvider, all graph optimisations, ``threads`` intra-op threads).

    ``model(input_ids=..., attention_mask=..., ...)`` takes numpy arrays or torch tensors (any integer dtype)
    and returns the graph's first output as a float torch tensor. An ``attention_mask`` the graph needs but
    the caller leaves out is all ones, a ``token_type_ids`` all zeros (one segment), as in PyTorch.
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        ort = require_module("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX model; write one with `fromzero export-onnx RUN OUT`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def feeds(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """The session's input dict: every graph input as int64, defaults filled in, unknown names refused."""
        unknown = sorted(set(inputs) - set(self.input_names))
        if unknown:
            raise ValueError(f"{self.path}: no input named {', '.join(unknown)}; its inputs are "
                             f"{', '.join(self.input_names)}")
        if "input_ids" not in inputs:
            raise ValueError(f"{self.path}: input_ids is required")
        feeds = {name: _as_int64(value, name) for name, value in inputs.items()}
        ids = feeds["input_ids"]
        for name in self.input_names:
            if name not in feeds and name == "attention_mask":
                feeds[name] = np.ones_like(ids)
            elif name not in feeds and name == "token_type_ids":
                feeds[name] = np.zeros_like(ids)
            elif name not in feeds:
                raise ValueError(f"{self.path}: input {name} is required")
        return feeds

    def __call__(self, **inputs: Any) -> torch.Tensor:
        """Run the graph; returns its output (logits, or hidden states for a BERT without an MLM head)."""
        return torch.from_numpy(self.session.run(self.output_names[:1], self.feeds(inputs))[0])
