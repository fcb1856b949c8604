"""Hugging Face ``ViTForImageClassification`` <-> fromzero ``vit``: config, key map, import and export.

Our ViT's modules mirror Hugging Face's one to one (see :mod:`fromzero.models.vit`); the
only transform is the fused attention input projection, ``qkv = [query; key; value]``
(rows), split on export and concatenated on import. Files use the names
``save_pretrained`` writes (``vit.encoder.layer.i.attention.attention.query``, ...);
import also takes the names transformers 5 uses in memory (``vit.layers.i.attention.q_proj``).

Import reads ``config.json`` and ``model.safetensors`` (or a ``pytorch_model.bin`` through
``torch.load(weights_only=True)``, which refuses anything but plain tensors: nothing is ever
unpickled), refuses configs our ViT cannot compute (a non-erf GELU, no qkv bias, non-square
images), checks every shape and accounts for every tensor. Export writes ``config.json`` +
``model.safetensors`` atomically (a staging folder renamed into place).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from fromzero.config import from_dict
from fromzero.errors import CheckpointError, ConfigError
from fromzero.interop.hf_files import read_json, read_weights
from fromzero.models.vit import ViT, VitConfig
from fromzero.staging import check_target, staged_dir

ARCHITECTURE = "ViTForImageClassification"
LAYER = "vit.encoder.layer.{i}."
BLOCK_KEYS = [  # ours (under blocks.i.) <-> Hugging Face (under vit.encoder.layer.i.), copied as they are
    ("norm1", "layernorm_before"), ("attn.proj", "attention.output.dense"), ("norm2", "layernorm_after"),
    ("mlp.fc", "intermediate.dense"), ("mlp.proj", "output.dense"),
]
TOP_KEYS = [
    ("patch_embed.projection.weight", "vit.embeddings.patch_embeddings.projection.weight"),
    ("patch_embed.projection.bias", "vit.embeddings.patch_embeddings.projection.bias"),
    ("cls_token", "vit.embeddings.cls_token"), ("pos_emb", "vit.embeddings.position_embeddings"),
    ("norm.weight", "vit.layernorm.weight"), ("norm.bias", "vit.layernorm.bias"),
    ("head.weight", "classifier.weight"), ("head.bias", "classifier.bias"),
]
QKV = ("query", "key", "value")
# transformers >= 5 in-memory names -> the file names above (applied in order)
RENAMES = [
    (r"\.attention\.q_proj\.", ".attention.attention.query."), (r"\.attention\.k_proj\.", ".attention.attention.key."),
    (r"\.attention\.v_proj\.", ".attention.attention.value."), (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".intermediate.dense."), (r"\.mlp\.fc2\.", ".output.dense."),
    (r"^vit\.layers\.(\d+)\.", r"vit.encoder.layer.\1."),
]
HF_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
               "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
               "image_size": 224, "patch_size": 16, "num_channels": 3, "qkv_bias": True}


def key_pairs(n_layer: int) -> list[tuple[str, str | tuple[str, str, str]]]:
    """(our name, Hugging Face name) for every tensor; the fused qkv pairs with its three HF tensors."""
    pairs: list[tuple[str, str | tuple[str, str, str]]] = list(TOP_KEYS)
    for i in range(n_layer):
        hf = LAYER.format(i=i)
        for ours, theirs in BLOCK_KEYS:
            pairs += [(f"blocks.{i}.{ours}.{p}", f"{hf}{theirs}.{p}") for p in ("weight", "bias")]
        for p in ("weight", "bias"):
            pairs.append((f"blocks.{i}.attn.qkv.{p}", tuple(f"{hf}attention.attention.{n}.{p}" for n in QKV)))
    return pairs


# -- export ----------------------------------------------------------------------------------------------------------

def vit_to_hf(model: ViT, class_names: Sequence[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Our ViT -> (config.json body, state dict) of Hugging Face ``ViTForImageClassification``."""
    c = model.config
    if model.head is None:
        raise CheckpointError("this ViT has no classifier (num_classes=0); ViTForImageClassification needs one: "
                              "fine-tune it on labelled images first")
    if len(class_names) != c.num_classes:
        raise CheckpointError(f"{len(class_names)} class names for a classifier with {c.num_classes} outputs; "
                              "pass one name per class, in label order")
    names = [str(n) for n in class_names]
    config = {
        "architectures": [ARCHITECTURE], "model_type": "vit", "hidden_size": c.n_embd,
        "num_hidden_layers": c.n_layer, "num_attention_heads": c.n_head, "intermediate_size": c.ffn_hidden,
        "hidden_act": "gelu", "hidden_dropout_prob": c.dropout, "attention_probs_dropout_prob": c.dropout,
        "initializer_range": c.init_std, "layer_norm_eps": c.norm_eps, "image_size": c.image_size,
        "patch_size": c.patch_size, "num_channels": c.in_channels, "qkv_bias": True, "encoder_stride": c.patch_size,
        "id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)},
        "torch_dtype": "float32", "dtype": "float32",
    }
    ours = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for name, theirs in key_pairs(c.n_layer):
        tensor = ours[name].detach().float()
        parts = tensor.chunk(3, dim=0) if isinstance(theirs, tuple) else (tensor,)
        for hf_name, part in zip((theirs,) if isinstance(theirs, str) else theirs, parts, strict=True):
            state[hf_name] = part.clone().contiguous()  # own storage: safetensors refuses shared tensors
    return config, state


def export_vit(model: ViT, class_names: Sequence[str], out_dir: str | Path, *, force: bool = False,
               image_mean: Sequence[float] | None = None, image_std: Sequence[float] | None = None) -> Path:
    """Write ``model`` as a folder ``ViTForImageClassification.from_pretrained`` loads (config.json +
    model.safetensors; + preprocessor_config.json when the normalisation ``image_mean`` / ``image_std`` are
    given). A non-empty ``out_dir`` is replaced only with ``force``; the folder appears complete or not at all."""
    out_dir = Path(out_dir)
    check_target(out_dir, force)
    config, state = vit_to_hf(model, class_names)
    with staged_dir(out_dir, force) as tmp:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if image_mean is not None and image_std is not None:
            size = model.config.image_size
            processor = {"image_processor_type": "ViTImageProcessor", "do_resize": True,
                         "size": {"height": size, "width": size}, "resample": 2, "do_rescale": True,
                         "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [float(m) for m in image_mean],
                         "image_std": [float(s) for s in image_std]}
            (tmp / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n", encoding="utf-8")
    return out_dir


# -- import ----------------------------------------------------------------------------------------------------------

def _square(hf: Mapping[str, Any], key: str, where: str) -> int:
    value = hf.get(key, HF_DEFAULTS[key])
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool):
        raise CheckpointError(f"{where}: config.json {key}={value!r} is not supported: fromzero's ViT takes square "
                              "images and patches (one integer)")
    return value


def _check_supported(hf: Mapping[str, Any], where: str) -> None:
    if hf.get("model_type") != "vit":
        raise CheckpointError(f"{where}: config.json model_type is {hf.get('model_type')!r}; fromzero imports "
                              f"Hugging Face ViT ({ARCHITECTURE}, model_type 'vit') here")
    archs = hf.get("architectures") or [ARCHITECTURE]
    if archs[0] != ARCHITECTURE:
        raise CheckpointError(f"{where}: architecture {archs[0]} is not supported; fromzero imports "
                              f"{ARCHITECTURE} (a ViT with its classifier)")
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise CheckpointError(f"{where}: config.json hidden_act={act!r} is not supported: fromzero's ViT uses the "
                              "exact (erf) GELU, hidden_act 'gelu'")
    if hf.get("qkv_bias", True) is not True:
        raise CheckpointError(f"{where}: config.json qkv_bias={hf.get('qkv_bias')!r} is not supported: fromzero's "
                              "ViT has query/key/value biases")


def _class_names(hf: Mapping[str, Any], where: str) -> list[str]:
    id2label = hf.get("id2label")
    if id2label:
        try:
            ids = sorted(id2label, key=int)
        except (TypeError, ValueError):
            raise CheckpointError(f"{where}: config.json id2label keys must be class ids 0..K-1") from None
        if [int(i) for i in ids] != list(range(len(ids))):
            raise CheckpointError(f"{where}: config.json id2label must number the classes 0..{len(ids) - 1}")
        return [str(id2label[i]) for i in ids]
    return [f"LABEL_{i}" for i in range(int(hf.get("num_labels", 2)))]


def vit_config_from_hf(hf: Mapping[str, Any], where: str = "config.json") -> tuple[VitConfig, list[str]]:
    """Our ``VitConfig`` and the class names from a Hugging Face ViT config.json (refusing what we cannot compute)."""
    _check_supported(hf, where)
    names = _class_names(hf, where)
    get = lambda key: hf.get(key, HF_DEFAULTS[key])  # noqa: E731  (absent keys take transformers' defaults)
    values = {"image_size": _square(hf, "image_size", where), "patch_size": _square(hf, "patch_size", where),
              "in_channels": get("num_channels"), "num_classes": len(names), "n_layer": get("num_hidden_layers"),
              "n_head": get("num_attention_heads"), "n_embd": get("hidden_size"),
              "mlp_hidden": get("intermediate_size"), "dropout": get("hidden_dropout_prob"),
              "norm_eps": get("layer_norm_eps"),
              "init_std": get("initializer_range")}
    try:
        config = from_dict(VitConfig, values)
    except ConfigError as err:
        raise CheckpointError(f"{where}: config.json gives a ViT fromzero cannot build ({err})") from None
    return config, names


def _canonical(state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for pattern, repl in RENAMES:
            key = re.sub(pattern, repl, key)
        if key in out:
            raise CheckpointError(f"{where}: tensor {key!r} appears twice (under two naming schemes)")
        out[key] = tensor
    return out


def vit_from_hf(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], where: str = "checkpoint"
                ) -> tuple[VitConfig, dict[str, torch.Tensor], list[str]]:
    """A Hugging Face ViTForImageClassification (config.json body, tensors) -> (our config, our state dict,
    class names). Every tensor must convert with our shape; a missing, extra or misshapen one is named."""
    cfg, names = vit_config_from_hf(config, where)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ViT(cfg).state_dict().items()}  # shapes only, no memory
    hf = _canonical(state_dict, where)
    ours: dict[str, torch.Tensor] = {}
    for name, theirs in key_pairs(cfg.n_layer):
        sources = (theirs,) if isinstance(theirs, str) else theirs
        missing = [s for s in sources if s not in hf]
        if missing:
            raise CheckpointError(f"{where}: tensor {missing[0]} is missing; the checkpoint does not match its "
                                  "config.json (download it again)")
        tensor = torch.cat([hf.pop(s) for s in sources]) if len(sources) > 1 else hf.pop(sources[0])
        if tuple(tensor.shape) != expected[name]:
            raise CheckpointError(f"{where}: {sources[0]} has shape {tuple(tensor.shape)}, config.json implies "
                                  f"{expected[name]}; the checkpoint does not match its config")
        ours[name] = tensor.float()
    if hf:
        extra = sorted(hf)
        raise CheckpointError(f"{where}: {len(extra)} tensor(s) fromzero's ViT has no place for, e.g. {extra[0]}; "
                              f"only {ARCHITECTURE} checkpoints convert")
    return cfg, ours, names


def import_vit(hf_dir: str | Path) -> tuple[ViT, list[str]]:
    """Read a Hugging Face ViTForImageClassification folder -> (our ViT in eval mode, class names by id)."""
    path = Path(hf_dir)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a folder; pass the folder holding config.json and model.safetensors")
    hf_config = read_json(path / "config.json")
    cfg, state, names = vit_from_hf(hf_config, read_weights(path), where=str(path))
    model = ViT(cfg)
    model.load_state_dict(state, strict=True)
    return model.eval(), names
