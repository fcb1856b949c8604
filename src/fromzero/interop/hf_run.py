"""Run directories <-> Hugging Face folders: what ``fromzero import-hf`` and ``fromzero export-hf`` do.

An imported run is an ordinary run directory::

    run_dir/config.yaml        a complete, valid recipe: model = the translated config, objective = the
                               family's default, data.tokenizer = the imported tokenizer's kind and size
    run_dir/tokenizer.json     the checkpoint's tokenizer (converted if it had no tokenizer.json)
    run_dir/model.safetensors  the converted weights
    run_dir/source.json        where it came from: source, folder, Hugging Face class, config.json, notes

so generate, eval, fill-mask, serve, info and export-hf work on it. Run directories hold base models: a
task-head checkpoint (BertForSequenceClassification, ...) is imported as its encoder, and the head's
tensors are listed in source.json (load the whole head model in Python with ``load_hf_model``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model

from fromzero.config import dump_yaml
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig
from fromzero.errors import CheckpointError, ConfigError
from fromzero.interop.hf import HFExport, export_model, load_hf_model
from fromzero.interop.hf_hub import resolve_source
from fromzero.interop.hf_tokenizer import load_hf_tokenizer
from fromzero.pretrain.recipe import DataConfig, PretrainRecipe, resolved_dict
from fromzero.pretrain.tasks import DEFAULT_TASK, get_task
from fromzero.runs import load_run
from fromzero.staging import check_target, staged_dir


@dataclass
class ImportReport:
    """What ``import_to_run`` wrote."""

    run_dir: Path
    source: Path
    architecture: str
    family: str
    parameters: int
    tokenizer_from: str
    notes: list[str] = field(default_factory=list)


def _tokenizer_section(tokenizer: Tokenizer) -> TokenizerConfig:
    """The recipe's tokenizer settings that describe the imported tokenizer (kind, size, special tokens)."""
    size = max(32, tokenizer.vocab_size)
    try:
        return TokenizerConfig(kind=tokenizer.kind, vocab_size=size, special_tokens=tokenizer.special_tokens)
    except ConfigError:  # e.g. no special tokens at all: the kind's defaults still make a valid recipe
        return TokenizerConfig(kind=tokenizer.kind, vocab_size=size)


def imported_recipe(family: str, model_cfg: Any, name: str, tokenizer: Tokenizer) -> dict[str, Any]:
    """The resolved recipe of an imported run (validated by the same classes as a trained run's)."""
    task = get_task(DEFAULT_TASK.get(family, "causal_lm"))
    objective_cfg = task.config_cls()
    recipe = PretrainRecipe(model={"name": family}, data=DataConfig(tokenizer=_tokenizer_section(tokenizer)),
                            out=name)
    return resolved_dict(recipe, model_cfg, objective_cfg, task.name)


def import_to_run(source: str, run_dir: str | Path, *, force: bool = False,
                  revision: str | None = None) -> ImportReport:
    """Import a Hugging Face checkpoint (local folder or hub id) as a fromzero run directory."""
    run_dir = Path(run_dir)
    check_target(run_dir, force)
    path = resolve_source(source, revision)
    imported = load_hf_model(path, backbone_only=True)
    tokenizer, tokenizer_from = load_hf_tokenizer(path, imported.hf_config.get("model_type"))
    vocab = imported.config.vocab_size
    if tokenizer.vocab_size > vocab:
        raise CheckpointError(f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                              f"{vocab} embeddings; the tokenizer files belong to another model")
    notes = []
    if imported.dropped:
        notes.append(f"the {imported.architecture} task head ({', '.join(imported.dropped)}) is not part of a run "
                     "directory; the encoder was imported")
    parameters = sum(p.numel() for p in imported.model.parameters())
    record = {"source": source, "path": str(path.resolve()), "architecture": imported.architecture,
              "model_type": imported.hf_config.get("model_type"), "family": imported.family,
              "parameters": parameters, "tokenizer_from": tokenizer_from, "notes": notes,
              "hf_config": imported.hf_config}
    recipe = imported_recipe(imported.family, imported.config, run_dir.name, tokenizer)
    with staged_dir(run_dir, force) as tmp:
        (tmp / "config.yaml").write_text(dump_yaml(recipe))
        tokenizer.save(tmp / "tokenizer.json")
        save_model(imported.model, str(tmp / "model.safetensors"))
        (tmp / "source.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    return ImportReport(run_dir, path, imported.architecture, imported.family, parameters, tokenizer_from, notes)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def export_run(run_dir: str | Path, out_dir: str | Path, *, force: bool = False,
               dtype: str | None = None) -> HFExport:
    """Export a run directory's model and tokenizer as a Hugging Face folder (see ``export_model``)."""
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    check_target(Path(out_dir), force)
    run = load_run(run_dir)
    shaped = [s["op"] for s in (run.compression or {}).get("steps", []) if s["op"] in ("structured", "quantize")]
    if shaped:
        raise ConfigError(f"{run.path}: a {shaped[0]} run (see its compression.json) has no Hugging Face "
                          "equivalent layout; export its float source run "
                          f"({run.compression.get('source')}), or this run with `fromzero export-onnx`")
    return export_model(run.model, run.tokenizer, out_dir, force=force, dtype=DTYPES[dtype] if dtype else None)

