"""LoRA as a fine-tuning method: swap adapters into a built model, train only them, merge, save and load them.

The adapted layer itself, :class:`fromzero.nn.lora.LoRALinear`, is a building block in ``nn/`` (with the
math); this module is the wiring: which layers get adapters (glob patterns over module names), which
parameters train, and the adapter file (safetensors with the config in its metadata). Swapping keeps
the base parameter names, so base checkpoints load unchanged and merging is exact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from fromzero.atomic import write_with
from fromzero.config import field, from_dict, require, to_dict
from fromzero.errors import CheckpointError, ConfigError
from fromzero.finetune.name_patterns import example_names, matches_any, matching
from fromzero.nn.lora import LORA_PARAMS, LoRALinear

ADAPTER_FORMAT = "fromzero-lora"


@dataclass(frozen=True)
class LoRAConfig:
    """Which linear layers get adapters and their shape (the ``lora:`` section of a fine-tuning recipe)."""

    rank: int = field(8, help="adapter rank r (A: r x in, B: out x r)")
    alpha: float = field(16.0, help="scale numerator: the update is multiplied by alpha / rank")
    dropout: float = field(0.0, help="dropout on the adapter's input")
    targets: list[str] = field(["*attn.qkv"], help="glob patterns of linear-layer names ('*' crosses dots), "
                                                  "e.g. '*attn.qkv', '*attn.proj', '*mlp.*'")

    def __post_init__(self) -> None:
        require(self.rank > 0, "rank", f"must be positive, got {self.rank}")
        require(self.alpha > 0, "alpha", f"must be positive, got {self.alpha}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(len(self.targets) > 0, "targets", "must name at least one linear layer pattern")


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def is_lora_key(name: str) -> bool:
    """True for state-dict keys / parameter names of adapter tensors (``...lora_a``, ``...lora_b``)."""
    return name.rpartition(".")[2] in LORA_PARAMS


def apply_lora(model: nn.Module, targets: Sequence[str], rank: int = 8, alpha: float = 16.0,
               dropout: float = 0.0) -> list[str]:
    """Replace every ``nn.Linear`` whose dotted module name matches a glob in ``targets`` by a :class:`LoRALinear`.

    Patterns use :func:`fnmatch.fnmatchcase` on the full name, where ``*`` also
    crosses dots: ``"*attn.qkv"`` matches ``blocks.0.attn.qkv`` and
    ``backbone.encoder.blocks.1.attn.qkv``. Returns the replaced names, in model
    order. A pattern matching no linear layer, or a layer that already has an
    adapter, is a :class:`ConfigError`.
    """
    if isinstance(model, nn.Linear):
        raise ValueError("apply_lora needs a model that contains linear layers; wrap a lone layer with "
                         "LoRALinear.from_linear")
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    chosen = matching([n for n, _ in linears], targets, "lora.targets", what="linear layer")
    replaced = []
    for name, module in linears:
        if name not in chosen:
            continue
        if isinstance(module, LoRALinear):
            raise ConfigError(f"lora.targets: {name!r} already has a LoRA adapter; apply LoRA once (or merge_lora "
                              "first)")
        _set_submodule(model, name, LoRALinear.from_linear(module, rank, alpha, dropout))
        replaced.append(name)
    return replaced


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    """The model's adapted layers by dotted name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> list[str]:
    """Fold every adapter into its weight, in place; each :class:`LoRALinear` becomes its original plain class.

    The merged model computes the same function (up to float rounding) and has
    exactly the base model's parameter names. Returns the merged layer names.
    """
    merged = []
    for name, module in list(lora_modules(model).items()):
        _set_submodule(model, name, module.to_linear())
        merged.append(name)
    return merged


def mark_only_lora_trainable(model: nn.Module, extra: Sequence[str] = ()) -> list[str]:
    """Freeze everything except adapter tensors and parameters matching the globs in ``extra``.

    ``extra`` keeps e.g. a task head trainable (``["head.*"]``), like PEFT's
    ``modules_to_save``. Returns the names of the trainable parameters.
    """
    params = dict(model.named_parameters())
    matching(list(params), extra, "lora.extra_trainable")
    if not any(is_lora_key(n) for n in params):
        raise ConfigError("the model has no LoRA adapters; call apply_lora (set lora.targets) first")
    trainable = []
    for name, p in params.items():
        keep = is_lora_key(name) or matches_any(name, extra)
        p.requires_grad_(keep)
        if keep:
            trainable.append(name)
    return trainable


def lora_state_dict(model: nn.Module, include: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Adapter tensors only (``...lora_a``, ``...lora_b``), plus parameters matching the globs in ``include``."""
    state = model.state_dict()
    matching(list(state), include, "lora.include")
    return {k: v for k, v in state.items() if is_lora_key(k) or matches_any(k, include)}


def save_adapter(model: nn.Module, path: str | Path, config: LoRAConfig, include: Sequence[str] = ()) -> Path:
    """Write the adapter (see :func:`lora_state_dict`) to a safetensors file; ``config`` goes in its metadata.

    The write is atomic. The file is small (about ``r * (in + out)`` numbers per
    adapted layer) and useless without the base model it was trained on.
    """
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in lora_state_dict(model, include).items()}
    if not any(is_lora_key(k) for k in tensors):
        raise ConfigError("the model has no LoRA adapters to save; call apply_lora first")
    metadata = {"format": ADAPTER_FORMAT, "lora": json.dumps(to_dict(config))}
    path = Path(path)
    write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def _read_adapter(path: Path) -> tuple[LoRAConfig, dict[str, torch.Tensor]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: adapter file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open is not a mapping)
    except Exception as err:  # safetensors raises its own types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    if metadata.get("format") != ADAPTER_FORMAT or "lora" not in metadata:
        raise CheckpointError(f"{path}: not a fromzero LoRA adapter (metadata format != {ADAPTER_FORMAT!r}); "
                              "write adapters with save_adapter")
    config = from_dict(LoRAConfig, json.loads(metadata["lora"]), file=str(path), prefix="lora")
    return config, tensors


def _expected_shapes(model: nn.Module, path: Path, config: LoRAConfig, layers: Sequence[str]
                     ) -> dict[str, tuple[int, ...]]:
    """The shape each file tensor must have in ``model`` (after adapters are added); checks layers first."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name in layers:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"{path}: adapter for {name!r} but the model has no such layer; load it into "
                                  "the model it was trained with") from None
        if not isinstance(module, nn.Linear):
            raise CheckpointError(f"{path}: {name!r} is a {type(module).__name__}, not a linear layer")
        if isinstance(module, LoRALinear) and module.rank != config.rank:
            raise CheckpointError(f"{path}: {name!r} has rank {module.rank} in the model, {config.rank} in the file")
        shapes[f"{name}.lora_a"] = (config.rank, module.in_features)
        shapes[f"{name}.lora_b"] = (module.out_features, config.rank)
    extra = sorted(set(lora_modules(model)) - set(layers))
    if extra:
        raise CheckpointError(f"{path}: the model has adapters on {example_names(extra)} that the file lacks; "
                              "load into a model without them")
    return shapes


def load_adapter(model: nn.Module, path: str | Path) -> LoRAConfig:
    """Load an adapter file into ``model``; layers without an adapter yet get one first. Returns its config.

    Adapters go exactly onto the layers named in the file (not re-matched from
    the patterns). Everything is checked before the model changes: a missing
    layer, a shape or rank mismatch, or a model adapter absent from the file is
    a :class:`CheckpointError` naming the file, and leaves the model as it was.
    """
    path = Path(path)
    config, tensors = _read_adapter(path)
    layers = sorted({k.rpartition(".")[0] for k in tensors if is_lora_key(k)})
    shapes = _expected_shapes(model, path, config, layers)
    for key, value in tensors.items():
        if key not in shapes:
            raise CheckpointError(f"{path}: tensor {key!r} has no parameter in the model")
        if shapes[key] != tuple(value.shape):
            raise CheckpointError(f"{path}: {key!r} has shape {tuple(value.shape)} in the file, {shapes[key]} in "
                                  "the model")
    for name in layers:
        module = model.get_submodule(name)
        if not isinstance(module, LoRALinear):
            _set_submodule(model, name, LoRALinear.from_linear(module, config.rank, config.alpha, config.dropout))
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, value in tensors.items():
            state[key].copy_(value)
    return config
