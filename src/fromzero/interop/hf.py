"""Hugging Face checkpoints <-> fromzero models, through the declarative maps of :mod:`hf_keymaps`.

Import: read ``config.json`` and the weights (``model.safetensors``, sharded ``model.safetensors.index.json``,
or ``pytorch_model.bin`` through ``torch.load(weights_only=True)``: nothing is ever unpickled), find the
model class from ``architectures`` / ``model_type``, translate the config, build our model, convert every
tensor (shapes checked, every tensor accounted for) and load it strictly.

Export: merge any LoRA adapters (on a copy), pick the Hugging Face class that matches the model (GPT-2 or
Llama for GPT configs, BertModel / BertForPreTraining / BertForMaskedLM / BertForNextSentencePrediction by
the BERT parts present, BertFor{SequenceClassification,TokenClassification,QuestionAnswering} for our heads,
T5ForConditionalGeneration) and write config.json + model.safetensors (+ tokenizer files) atomically.

No network access happens here; hub ids are resolved (explicitly) in :mod:`fromzero.interop.hf_hub`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import CheckpointError
from fromzero.finetune.lora import lora_modules, merge_lora
from fromzero.interop.hf_files import read_checkpoint
from fromzero.interop.hf_keymaps import ARCHITECTURES, GPT2, LLAMA
from fromzero.interop.hf_tokenizer import save_hf_tokenizer, special_ids
from fromzero.interop.keymap import Architecture, KeyMap, aliases, check_leftovers, expand, from_hf, to_hf
from fromzero.models import build_model, family_of, model_config
from fromzero.models.heads import SequenceClassifier, SpanQA, TokenClassifier
from fromzero.staging import check_target, staged_dir

PROBLEM_TYPES = {"single_label": "single_label_classification", "multi_label": "multi_label_classification",
                 "regression": "regression"}
HEAD_CLASSES = {"sequence": SequenceClassifier, "token": TokenClassifier, "qa": SpanQA}


@dataclass
class ImportedModel:
    """A converted model and what it came from."""

    model: nn.Module
    architecture: str  # the Hugging Face class
    family: str  # ours
    config: Any  # our (backbone's) family config
    hf_config: dict[str, Any]
    labels: list[str] | None = None  # id2label of a classification head, by id
    dropped: list[str] = field(default_factory=list)  # HF tensors left out (a head, with backbone_only=True)


@dataclass
class HFExport:
    """A model in Hugging Face form, not yet written."""

    architecture: str
    auto_class: str
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    dropped: list[str]  # our tensors the HF class has no place for (e.g. a pooler in BertForMaskedLM)


# -- config translation ----------------------------------------------------------------------------------------------

def config_from_hf(km: KeyMap, hf: Mapping[str, Any], weights: Any, where: str) -> dict[str, Any]:
    """Our family config's fields from a Hugging Face config.json (refusing what our model cannot compute)."""
    for key, (accepted, why) in km.config.hf_accept.items():
        value = hf.get(key)
        if value is not None and value not in accepted:
            raise CheckpointError(f"{where}: config.json {key}={value!r} is not supported: {why}")
    values = {}
    for hf_key, ours, default, _ in km.config.fields:
        if ours is not None:
            value = hf.get(hf_key)
            values[ours] = default if value is None else value
    values.update(km.config.ours_fixed)
    try:
        values.update(km.config.from_extra(hf, weights))
    except CheckpointError as err:
        raise CheckpointError(f"{where}: {err}") from None
    return values


def mismatches(km: KeyMap, config: Any) -> list[str]:
    """Our config's fields that differ from what the HF model type always has (empty: it converts)."""
    out = []
    for key, value in km.config.ours_fixed.items():
        have = getattr(config, key)
        if key == "n_kv_head" and have == config.n_head:  # n_kv_head == n_head is plain multi-head attention
            have = None
        if have != value:
            out.append(f"{key}={have!r} (needs {value!r})")
    return out


def config_to_hf(km: KeyMap, config: Any) -> dict[str, Any]:
    """A Hugging Face config.json body for our family config."""
    hf: dict[str, Any] = {"model_type": km.model_type}
    for hf_key, ours, _, attr in km.config.fields:
        hf[hf_key] = getattr(config, attr or ours)
    hf.update(km.config.hf_fixed)
    hf.update(km.config.to_extra(config))
    return hf


# -- import ----------------------------------------------------------------------------------------------------------

def _head_model(arch: Architecture, backbone: nn.Module, hf: Mapping[str, Any]) -> tuple[nn.Module, list[str]]:
    labels_map = hf.get("id2label") or {}
    labels = [str(labels_map[k]) for k in sorted(labels_map, key=int)] if labels_map else []
    num_labels = len(labels) or int(hf.get("num_labels", 2))
    dropout = hf.get("classifier_dropout")
    dropout = float(hf.get("hidden_dropout_prob", 0.1) if dropout is None else dropout)
    if arch.head == "sequence":
        problem = {v: k for k, v in PROBLEM_TYPES.items()}.get(hf.get("problem_type") or "single_label_classification")
        if problem is None:
            raise CheckpointError(f"config.json problem_type={hf.get('problem_type')!r} is unknown")
        return SequenceClassifier(backbone, num_labels, problem=problem, pooling="cls", dropout=dropout), labels
    if arch.head == "token":
        return TokenClassifier(backbone, num_labels, dropout=dropout), labels
    if num_labels != 2:
        raise CheckpointError(f"config.json num_labels={num_labels}: question answering needs 2 (start, end)")
    return SpanQA(backbone), []


def load_hf_model(path: str | Path, *, backbone_only: bool = False) -> ImportedModel:
    """Import a Hugging Face checkpoint folder as a fromzero model (eval mode, float32).

    Task-head classes (BertForSequenceClassification, ...) become our head modules; with
    ``backbone_only`` only the base model is imported and the head's tensors are listed in ``dropped``.
    Every tensor must convert: a missing or unexpected tensor, or a wrong shape, is a CheckpointError
    naming it.
    """
    ckpt = read_checkpoint(path)
    where, arch = str(ckpt.path), ckpt.architecture
    km = arch.keymap
    cfg = model_config(km.family, config_from_hf(km, ckpt.config, ckpt, where), file=str(ckpt.path / "config.json"))
    model = build_model(cfg)  # its random init is overwritten below, every tensor
    labels, dropped, prefix = None, [], ""
    if arch.head is not None and backbone_only:
        dropped = [h for rule in arch.head_rules for h in rule.hf]
        arch = replace(arch, head_rules=())
    elif arch.head is not None:
        model, labels = _head_model(arch, model, ckpt.config)
        prefix = "backbone."
    state = dict(ckpt.state)
    for name, source in km.fill_missing.items():
        if name not in state and source in state:
            state[name] = state[source]
    expected = model.state_dict(keep_vars=True)
    tied = aliases(expected)
    pairs = expand(arch, cfg, km.flags(cfg), prefix)
    converted, used = from_hf(state, pairs, {k: tuple(v.shape) for k, v in expected.items()}, where)
    for name, source in tied.items():
        converted[name] = converted[source]
    unmapped = sorted(set(expected) - set(converted))
    if unmapped:
        raise CheckpointError(f"{where}: no tensor of the checkpoint maps to fromzero's {unmapped[:3]}; "
                              f"the {km.name} key map does not cover this configuration")
    check_leftovers(state, used, km, where, skip=set(dropped))
    model.load_state_dict(converted, strict=True)
    return ImportedModel(model.float().eval(), ckpt.architecture.name, km.family, cfg, ckpt.config, labels, dropped)


# -- export ----------------------------------------------------------------------------------------------------------

def _gpt_keymap(config: Any) -> KeyMap:
    problems = {km.name: mismatches(km, config) for km in (GPT2, LLAMA)}
    for km in (GPT2, LLAMA):
        if not problems[km.name]:
            return km
    raise CheckpointError("this GPT config matches no Hugging Face model: as GPT-2 it differs in "
                          f"{', '.join(problems['gpt2'])}; as Llama in {', '.join(problems['llama'])}")


def _bert_architecture(config: Any) -> Architecture:
    if config.pre_norm:
        raise CheckpointError("Hugging Face BERT is post-norm; a pre_norm=true model has no HF equivalent")
    if config.mlm_head:
        return ARCHITECTURES["BertForPreTraining" if config.nsp_head else "BertForMaskedLM"]
    return ARCHITECTURES["BertForNextSentencePrediction" if config.nsp_head else "BertModel"]


def choose_architecture(model: nn.Module) -> tuple[Architecture, Any]:
    """The Hugging Face class a model exports to, and the (backbone's) family config."""
    head = next((k for k, cls in HEAD_CLASSES.items() if isinstance(model, cls)), None)
    base = model.backbone if head is not None else model
    config = getattr(base, "config", None)
    try:
        family = family_of(config).name
    except ValueError:
        raise CheckpointError(f"{type(base).__name__} is not a fromzero model family; nothing to export") from None
    if head is not None:
        name = {"sequence": "BertForSequenceClassification", "token": "BertForTokenClassification",
                "qa": "BertForQuestionAnswering"}[head]
        if family != "bert":
            raise CheckpointError(f"Hugging Face has no {type(model).__name__} class for a {family} backbone here; "
                                  "export the backbone alone (export_model(model.backbone, ...))")
        if head == "sequence" and model.pooling != "cls":
            raise CheckpointError(f"BertForSequenceClassification classifies the pooled [CLS] vector; this head "
                                  f"pools with {model.pooling!r}, which Hugging Face cannot reproduce")
        return ARCHITECTURES[name], config
    if family == "gpt":
        km = _gpt_keymap(config)
        return next(a for a in ARCHITECTURES.values() if a.keymap is km and a.head is None), config
    if family == "bert":
        return _bert_architecture(config), config
    return ARCHITECTURES["T5ForConditionalGeneration"], config


def _head_config(model: nn.Module, labels: Sequence[str] | None) -> dict[str, Any]:
    if isinstance(model, SpanQA):
        n = 2
    else:
        n = model.num_labels
    names = list(labels) if labels else [f"LABEL_{i}" for i in range(n)]
    if len(names) != n:
        raise CheckpointError(f"{len(names)} label names for a head with {n} outputs")
    out: dict[str, Any] = {"num_labels": n, "id2label": dict(enumerate(names)),
                           "label2id": {name: i for i, name in enumerate(names)}}
    if not isinstance(model, SpanQA):
        out["classifier_dropout"] = model.head.dropout.p
    if isinstance(model, SequenceClassifier):
        out["problem_type"] = PROBLEM_TYPES[model.problem]
    return out


def to_hf_checkpoint(model: nn.Module, tokenizer: Tokenizer | None = None, *, labels: Sequence[str] | None = None,
                     dtype: torch.dtype | None = None) -> HFExport:
    """Convert a model (LoRA merged on a copy) to Hugging Face names, shapes and config, without writing."""
    if lora_modules(model):
        model = copy.deepcopy(model)
        merge_lora(model)
    arch, cfg = choose_architecture(model)
    km = arch.keymap
    own = km.flags(cfg)
    for part, present in arch.parts.items():
        if present and not own[part]:
            raise CheckpointError(f"Hugging Face {arch.name} has a {part.replace('_', ' ')}, this model has none; "
                                  f"build it with {part}=true")
    prefix = "backbone." if arch.head is not None else ""
    pairs = expand(arch, cfg, {**own, **arch.parts}, prefix)
    state = model.state_dict(keep_vars=True)
    produced = {p.ours for p in pairs}
    dropped = sorted({p.ours for p in expand(arch, cfg, own, prefix)} - produced)
    unknown = sorted(set(state) - set(aliases(state)) - produced - set(dropped))
    if unknown:
        raise CheckpointError(f"fromzero tensors {unknown[:3]} have no place in Hugging Face {arch.name}")
    tensors = to_hf(state, pairs)
    if not arch.prefixed:
        tensors = {k.removeprefix(km.base_prefix): v for k, v in tensors.items()}
    dtype = dtype or next(model.parameters()).dtype
    tensors = {k: v.to(dtype) for k, v in tensors.items()}
    hf = config_to_hf(km, cfg)
    ids = special_ids(tokenizer, family=km.family) if tokenizer is not None else {}
    if km.family == "gpt" and tokenizer is None:  # else transformers assumes GPT-2's 50256, outside a small vocab
        ids = {"bos_token_id": None, "eos_token_id": None}
    for key, value in ids.items():
        hf.setdefault(key, value)
    if arch.head is not None:
        hf.update(_head_config(model, labels))
    dtype_name = str(dtype).removeprefix("torch.")
    hf.update({"architectures": [arch.name], "torch_dtype": dtype_name, "dtype": dtype_name})
    return HFExport(arch.name, arch.auto_class, hf, tensors, dropped)


def export_model(model: nn.Module, tokenizer: Tokenizer | None, out_dir: str | Path, *, force: bool = False,
                 labels: Sequence[str] | None = None, dtype: torch.dtype | None = None) -> HFExport:
    """Write ``model`` (+ tokenizer) as a Hugging Face checkpoint folder that ``from_pretrained`` loads.

    LoRA adapters are merged into a copy first (the model passed in is unchanged). ``labels`` names a
    classification head's outputs (id2label). A non-empty ``out_dir`` is replaced only with ``force``;
    the folder appears complete or not at all.
    """
    out_dir = Path(out_dir)
    check_target(out_dir, force)
    export = to_hf_checkpoint(model, tokenizer, labels=labels, dtype=dtype)
    with staged_dir(out_dir, force) as tmp:
        (tmp / "config.json").write_text(json.dumps(export.config, indent=2, sort_keys=True) + "\n")
        save_file(export.state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if tokenizer is not None:
            max_len = export.config.get("n_positions") or export.config.get("max_position_embeddings") or 512
            save_hf_tokenizer(tokenizer, tmp, model_max_length=int(max_len))
    return export
