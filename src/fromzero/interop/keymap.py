"""The key-map engine: declarative rules, expanded for one config, move tensors between naming schemes.

A :class:`Rule` ties one fromzero tensor to one or more Hugging Face tensors::

    Rule("blocks.{i}.attn.qkv.weight", "h.{i}.attn.c_attn.weight", TRANSPOSE)      GPT-2's Conv1D stores (in, out)
    Rule("blocks.{i}.attn.qkv.weight", ("layers.{i}.self_attn.q_proj.weight", ..., ...), CONCAT, split="qkv")

``{i}`` runs over the (encoder) blocks and ``{d}`` over T5's decoder blocks. Transforms:

    copy        ours = hf
    transpose   ours = hf^T                                  (2-D)
    concat      ours = cat(hf_1, ..., hf_n) along rows; on export split back by the sizes
                ``KeyMap.splits[split](config)`` gives (e.g. [n_head*hd, n_kv*hd, n_kv*hd])

``when`` names a condition on our config (``KeyMap.conditions``: "untied", "pooler", "gated", ...); the rule
applies only where it holds. Backbone rules name Hugging Face tensors inside the base model (``KeyMap.base_prefix``
is added: ``transformer.``, ``bert.``, ``model.`` or nothing); head rules use full names.

The tables themselves live in :mod:`fromzero.interop.hf_keymaps`; this module only expands and applies them,
checking every shape and accounting for every tensor on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from fromzero.errors import CheckpointError

COPY, TRANSPOSE, CONCAT = "copy", "transpose", "concat"
_PLACEHOLDER = re.compile(r"\{(\w)\}")


@dataclass(frozen=True)
class Rule:
    """One fromzero tensor <-> one or more Hugging Face tensors (see the module docstring)."""

    ours: str
    hf: str | tuple[str, ...]
    transform: str = COPY
    split: str | None = None
    when: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.hf, str):
            object.__setattr__(self, "hf", (self.hf,))
        if self.transform not in (COPY, TRANSPOSE, CONCAT):
            raise ValueError(f"unknown transform {self.transform!r}")
        if (self.transform == CONCAT) != (self.split is not None):
            raise ValueError(f"{self.ours}: concat rules, and only they, name a split")


@dataclass(frozen=True)
class ConfigMap:
    """Hugging Face config.json <-> our config dataclass, as data plus two hooks for what data cannot say.

    ``fields``: (hf key, our field, HF default when config.json omits it, our attribute to export from).
    ``ours_fixed``: our fields every model of this HF type has (set on import, required on export).
    ``hf_fixed``: HF keys written on export. ``hf_accept``: HF key -> (accepted values, why others are not).
    ``from_extra(hf_config, weights)`` / ``to_extra(config)``: computed fields (ties, RoPE, head parts).
    """

    fields: tuple[tuple[str, str, Any, str | None], ...]
    ours_fixed: Mapping[str, Any]
    hf_fixed: Mapping[str, Any]
    hf_accept: Mapping[str, tuple[tuple[Any, ...], str]]
    from_extra: Callable[[Mapping[str, Any], Any], dict[str, Any]]
    to_extra: Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class KeyMap:
    """Everything that converts one Hugging Face model type to one fromzero family and back."""

    name: str  # our name for the HF model type: "gpt2", "llama", "bert", "t5"
    family: str  # fromzero family
    model_type: str  # Hugging Face config.json model_type
    base_prefix: str  # prefix of the base model inside the HF head classes
    top_level: tuple[str, ...]  # first name parts of HF tensors outside the base model
    backbone: tuple[Rule, ...]
    heads: tuple[Rule, ...]
    layers: Callable[[Any], dict[str, int]]  # placeholder -> count
    conditions: Mapping[str, Callable[[Any], bool]]
    splits: Mapping[str, Callable[[Any], list[int]]]
    config: ConfigMap
    tied: Mapping[str, str] = field(default_factory=dict)  # full HF name -> full HF name it duplicates
    ignore: tuple[str, ...] = ()  # regexes (full match) of full HF names that are buffers, not parameters
    renames: tuple[tuple[str, str], ...] = ()  # (regex, replacement): old spellings (LayerNorm.gamma)
    fill_missing: Mapping[str, str] = field(default_factory=dict)  # absent HF tensor -> the tensor it equals

    def canonical(self, key: str) -> str:
        """A checkpoint key as a full name of the HF head class (base prefix added where it was left out)."""
        for pattern, repl in self.renames:
            key = re.sub(pattern, repl, key)
        if key.startswith(self.base_prefix) or key.split(".", 1)[0] in self.top_level:
            return key
        return self.base_prefix + key

    def flags(self, config: Any) -> dict[str, bool]:
        """Every condition evaluated on ``config``."""
        return {name: bool(fn(config)) for name, fn in self.conditions.items()}


@dataclass(frozen=True)
class Architecture:
    """A Hugging Face model class: which key map, which optional parts it has, which task head."""

    name: str  # e.g. "BertForSequenceClassification"
    keymap: KeyMap
    auto_class: str  # the transformers Auto class that loads it
    parts: Mapping[str, bool] = field(default_factory=dict)  # conditions the class fixes (export) / needs (import)
    prefixed: bool = True  # the class nests the base model under keymap.base_prefix
    head: str | None = None  # our task head: "sequence", "token" or "qa"
    head_rules: tuple[Rule, ...] = ()  # our head's tensors (full names on both sides)
    optional: tuple[str, ...] = ()  # parts import takes by presence although export writes them (BertModel pooler)

    def needs(self, part: str) -> bool:
        """Whether a checkpoint of this class must hold ``part``'s tensors."""
        return self.parts.get(part) is True and part not in self.optional


@dataclass(frozen=True)
class Pair:
    """One expanded rule: concrete names, and split sizes for concat."""

    ours: str
    hf: tuple[str, ...]
    transform: str
    sizes: tuple[int, ...] | None


def _bindings(template: str, counts: Mapping[str, int]) -> Iterator[dict[str, int]]:
    names = set(_PLACEHOLDER.findall(template))
    if not names:
        yield {}
        return
    if len(names) > 1:
        raise ValueError(f"{template}: one placeholder per rule")
    name = names.pop()
    for index in range(counts[name]):
        yield {name: index}


def expand(arch: Architecture, config: Any, flags: Mapping[str, bool], our_prefix: str = "") -> list[Pair]:
    """Concrete (ours, hf) pairs of ``arch`` for ``config`` where ``flags`` hold; full HF names."""
    km = arch.keymap
    counts = km.layers(config)
    pairs = []
    groups = [(km.backbone, our_prefix, km.base_prefix), (km.heads, our_prefix, ""), (arch.head_rules, "", "")]
    for rules, ours_prefix, hf_prefix in groups:
        for rule in rules:
            if rule.when is not None and not flags[rule.when]:
                continue
            sizes = tuple(km.splits[rule.split](config)) if rule.split else None
            for b in _bindings(rule.ours, counts):
                hf = tuple(hf_prefix + h.format(**b) for h in rule.hf)
                pairs.append(Pair(ours_prefix + rule.ours.format(**b), hf, rule.transform, sizes))
    return pairs


def _needed_shapes(pair: Pair, ours: tuple[int, ...]) -> list[tuple[int, ...]]:
    if pair.transform == TRANSPOSE:
        return [tuple(reversed(ours))]
    if pair.transform == CONCAT:
        return [(size, *ours[1:]) for size in pair.sizes or ()]
    return [ours]


def from_hf(state: Mapping[str, torch.Tensor], pairs: list[Pair], expected: Mapping[str, tuple[int, ...]],
            where: str) -> tuple[dict[str, torch.Tensor], set[str]]:
    """HF tensors (full names) -> our tensors; checks presence and shapes. Returns (ours, HF names used)."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for pair in pairs:
        for name in pair.hf:
            if name not in state:
                raise CheckpointError(f"{where}: tensor {name!r} is missing (fromzero's {pair.ours!r} is made from "
                                      "it); the checkpoint is incomplete, or its config.json describes another "
                                      "model: use the config.json that came with these weights")
        if pair.ours not in expected:
            raise CheckpointError(f"{where}: the key map names fromzero tensor {pair.ours!r}, which the model "
                                  "built from config.json lacks")
        parts = [state[name] for name in pair.hf]
        for name, part, need in zip(pair.hf, parts, _needed_shapes(pair, expected[pair.ours]), strict=True):
            if tuple(part.shape) != need:
                raise CheckpointError(f"{where}: tensor {name!r} has shape {tuple(part.shape)}, but fromzero's "
                                      f"{pair.ours!r} needs {need} (built from config.json); the weights and "
                                      "config.json disagree: use the config.json that came with these weights")
        if pair.transform == TRANSPOSE:
            out[pair.ours] = parts[0].t()
        elif pair.transform == CONCAT:
            out[pair.ours] = torch.cat(parts, dim=0)
        else:
            out[pair.ours] = parts[0]
        used.update(pair.hf)
    return out, used


def to_hf(state: Mapping[str, torch.Tensor], pairs: list[Pair]) -> dict[str, torch.Tensor]:
    """Our tensors -> HF tensors (full names), each a fresh contiguous copy (safetensors stores no shared views)."""
    out: dict[str, torch.Tensor] = {}
    for pair in pairs:
        tensor = state[pair.ours].detach()
        if pair.transform == TRANSPOSE:
            parts = [tensor.t()]
        elif pair.transform == CONCAT:
            parts = list(tensor.split(list(pair.sizes or ()), dim=0))
        else:
            parts = [tensor]
        for name, part in zip(pair.hf, parts, strict=True):
            out[name] = part.contiguous().clone()
    return out


def check_leftovers(state: Mapping[str, torch.Tensor], used: set[str], km: KeyMap, where: str,
                    skip: set[str] = frozenset()) -> None:
    """Every HF tensor not converted must be a known buffer, a tie duplicate equal to its source, or in ``skip``."""
    unexpected = []
    for key in sorted(set(state) - used - skip):
        if any(re.fullmatch(pattern, key) for pattern in km.ignore):
            continue
        source = km.tied.get(key)
        if source is not None:
            if source in state and torch.equal(state[key], state[source]):
                continue
            raise CheckpointError(f"{where}: tensor {key!r} differs from {source!r}, but fromzero's {km.family} "
                                  "model ties them (one tensor); this checkpoint cannot be converted exactly")
        unexpected.append(key)
    if unexpected:
        shown = ", ".join(repr(k) for k in unexpected[:4]) + (", ..." if len(unexpected) > 4 else "")
        raise CheckpointError(f"{where}: {len(unexpected)} tensor(s) that fromzero's {km.family} model has no "
                              f"place for: {shown}; this checkpoint has parts the {km.name} converter does not "
                              "support")


def aliases(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Names of tied tensors -> the first name of the same tensor (``lm_head.weight`` -> ``tok_emb.weight``)."""
    first: dict[int, str] = {}
    out = {}
    for name, tensor in state.items():
        key = id(tensor)
        if key in first:
            out[name] = first[key]
        else:
            first[key] = name
    return out
