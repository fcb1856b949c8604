"""LoRA: low-rank adapters swapped into a built model, keeping the base parameter names.

A frozen linear layer ``y = x W^T + b`` (W: out x in) learns a low-rank update

    y = x W^T + b + (alpha / r) * Dropout(x) A^T B^T       A: r x in, B: out x r, r << min(in, out)

A starts uniform (Kaiming, as in Microsoft's loralib and PEFT) and B at zero,
so at initialisation the adapted model computes exactly what the base model
did. Merging folds the update into the weight, ``W' = W + (alpha / r) B A``,
which gives the same function with no extra cost at inference.

:class:`LoRALinear` *is* a :class:`fromzero.nn.Linear` whose ``weight`` and
``bias`` are the very Parameter objects of the layer it replaces, plus
``lora_a`` and ``lora_b``. So ``blocks.0.attn.qkv.weight`` keeps its name (base
checkpoints and Hugging Face key maps still apply), tied weights stay tied,
and the adapter adds exactly two keys per layer, ``<layer>.lora_a`` and
``<layer>.lora_b``. A fused projection such as ``attn.qkv`` = [q; k; v] gets
one adapter over its whole output: one A shared by q, k and v and one B with
a row block for each, so the joint update has rank <= r (three separate
rank-r adapters would allow rank up to 3r at a similar parameter count).

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models",
https://arxiv.org/abs/2106.09685.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from fromzero.atomic import write_with
from fromzero.config import field, from_dict, require, to_dict
from fromzero.errors import CheckpointError, ConfigError
from fromzero.nn.linear import Linear

ADAPTER_FORMAT = "fromzero-lora"
LORA_PARAMS = ("lora_a", "lora_b")
# Attributes LoRALinear adds on top of a plain linear layer (not copied back by merging).
_LORA_ATTRS = {"rank", "alpha", "scaling", "base_cls", "lora_dropout", *LORA_PARAMS}
_MODULE_ATTRS = {"training", "in_features", "out_features"}


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


def _copy_plain_attrs(src: nn.Module, dst: nn.Module, skip: set[str]) -> None:
    """Carry over user attributes (e.g. ``is_residual_projection``) that are not parameters or submodules."""
    for key, value in vars(src).items():
        if not key.startswith("_") and key not in skip and key not in _MODULE_ATTRS:
            setattr(dst, key, value)


class LoRALinear(Linear):
    """A linear layer plus a low-rank update: ``x W^T + b + (alpha/r) Dropout(x) A^T B^T``.

    Build it from an existing layer with :meth:`from_linear` (shares that layer's
    ``weight``/``bias``) or directly like ``nn.Linear`` with a ``rank``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float = 16.0, dropout: float = 0.0,
                 bias: bool = True, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.base_cls: type[nn.Linear] = Linear
        self._init_adapter(rank, alpha, dropout)

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, alpha: float = 16.0, dropout: float = 0.0) -> LoRALinear:
        """Wrap ``linear``: the result holds the same weight and bias Parameters (no copy) and a fresh adapter."""
        lora = cls.__new__(cls)
        nn.Module.__init__(lora)
        lora.in_features, lora.out_features = linear.in_features, linear.out_features
        lora.register_parameter("weight", linear.weight)
        lora.register_parameter("bias", linear.bias)
        _copy_plain_attrs(linear, lora, skip=set())
        lora.base_cls = type(linear)
        lora._init_adapter(rank, alpha, dropout)
        return lora.train(linear.training)

    def _init_adapter(self, rank: int, alpha: float, dropout: float) -> None:
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.rank, self.alpha, self.scaling = rank, float(alpha), float(alpha) / rank
        w = self.weight
        self.lora_a = nn.Parameter(torch.empty(rank, self.in_features, device=w.device, dtype=w.dtype))
        self.lora_b = nn.Parameter(torch.zeros(self.out_features, rank, device=w.device, dtype=w.dtype))
        self.lora_dropout = nn.Dropout(dropout)
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # nn.Linear's default init, as loralib does

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out)."""
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_a), self.lora_b)  # (..., r) -> (..., out)
        return super().forward(x) + self.scaling * update

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """W + (alpha / r) B A, the weight of the equivalent plain layer (out, in)."""
        return self.weight + self.scaling * (self.lora_b @ self.lora_a).to(self.weight.dtype)

    def to_linear(self) -> nn.Linear:
        """A plain layer of the original class with the update folded in; the bias Parameter is shared.

        The merged weight is a new Parameter, so a weight tied elsewhere (GPT's
        ``lm_head`` and ``tok_emb``) is untied rather than silently changed there.
        """
        cls = self.base_cls
        plain = cls.__new__(cls)
        nn.Module.__init__(plain)
        plain.in_features, plain.out_features = self.in_features, self.out_features
        plain.register_parameter("weight", nn.Parameter(self.merged_weight(), requires_grad=self.weight.requires_grad))
        plain.register_parameter("bias", self.bias)
        _copy_plain_attrs(self, plain, skip=_LORA_ATTRS)
        return plain.train(self.training)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha:g}"


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def is_lora_key(name: str) -> bool:
    """True for state-dict keys / parameter names of adapter tensors (``...lora_a``, ``...lora_b``)."""
    return name.rpartition(".")[2] in LORA_PARAMS


def _examples(names: Sequence[str], n: int = 4) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (", ..." if len(names) > n else "") if names else "(none)"


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
    names = [n for n, _ in linears]
    chosen: set[str] = set()
    for pattern in targets:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ConfigError(f"lora.targets: {pattern!r} matches no linear layer; this model's linear layers "
                              f"are named like {_examples(names)}")
        chosen.update(matched)
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


def _match_any(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _check_patterns(names: Sequence[str], patterns: Sequence[str], key: str) -> None:
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise ConfigError(f"{key}: {pattern!r} matches no parameter; parameters are named like "
                              f"{_examples(list(names))}")


def mark_only_lora_trainable(model: nn.Module, extra: Sequence[str] = ()) -> list[str]:
    """Freeze everything except adapter tensors and parameters matching the globs in ``extra``.

    ``extra`` keeps e.g. a task head trainable (``["head.*"]``), like PEFT's
    ``modules_to_save``. Returns the names of the trainable parameters.
    """
    params = dict(model.named_parameters())
    _check_patterns(list(params), extra, "lora.extra_trainable")
    if not any(is_lora_key(n) for n in params):
        raise ConfigError("the model has no LoRA adapters; call apply_lora (set lora.targets) first")
    trainable = []
    for name, p in params.items():
        keep = is_lora_key(name) or _match_any(name, extra)
        p.requires_grad_(keep)
        if keep:
            trainable.append(name)
    return trainable


def lora_state_dict(model: nn.Module, include: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Adapter tensors only (``...lora_a``, ``...lora_b``), plus parameters matching the globs in ``include``."""
    state = model.state_dict()
    _check_patterns(list(state), include, "lora.include")
    return {k: v for k, v in state.items() if is_lora_key(k) or _match_any(k, include)}


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
        raise CheckpointError(f"{path}: the model has adapters on {_examples(extra)} that the file lacks; "
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
