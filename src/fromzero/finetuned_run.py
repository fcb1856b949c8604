"""Read a fine-tuned run directory (written by ``fromzero finetune``): model with its head, tokenizer, labels.

    run_dir/finetune.json        backbone family and config, head kind, problem, pooling, num_labels, labels
    run_dir/config.yaml          the resolved recipe (``task.max_len``, ``task.dropout`` are read here)
    run_dir/labels.txt           class names in class-id order (also in finetune.json)
    run_dir/tokenizer.json       the base run's tokenizer
    run_dir/model.safetensors    ``backbone.*`` + ``head.*`` (LoRA runs: merged); sft runs: the plain model's
                                 own names (no head), so they also load as an ordinary run (``run_dir.load_run``)

Sequence-to-sequence runs (``kind: seq2seq``) have no head: the fine-tuned
model *is* the T5, saved under T5's own parameter names (``tok_emb.weight``,
``encoder.blocks.0.attn.qkv.weight``, ...) exactly as a pretraining run saves
it. So a seq2seq run loads with the base family's module alone, its weights
drop into any T5 of the same config, and ``fromzero generate RUN "text"``
translates with it.

This sits beside :mod:`fromzero.run_dir` so that consumers below training
(serving) load fine-tuned runs without importing ``fromzero.train``;
``fromzero.train.finetune.load_finetuned`` adds the parsed recipe on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from fromzero.config import load_yaml
from fromzero.data.task_data import LabelVocab
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import CheckpointError, ConfigError
from fromzero.models import build_model, model_config
from fromzero.models.heads import SequenceClassifier, SpanQA, TokenClassifier
from fromzero.run_dir import load_weights

INFO_FILE = "finetune.json"


@dataclass
class FinetunedModel:
    """A fine-tuned run's model (backbone + head, eval mode), tokenizer, labels and finetune.json."""

    path: Path
    model: nn.Module
    tokenizer: Tokenizer
    vocab: LabelVocab | None
    info: dict[str, Any]
    config: dict[str, Any]  # config.yaml as written (the resolved recipe)

    @property
    def kind(self) -> str:
        """sequence_classification | token_classification | span_qa | sft | seq2seq."""
        return self.info["kind"]

    @property
    def problem(self) -> str:
        """single_label | multi_label | regression (sequence classification)."""
        return self.info.get("problem") or "single_label"

    @property
    def max_len(self) -> int:
        """Tokens per sequence the head was trained on, special tokens included."""
        return int((self.config.get("task") or {}).get("max_len", 128))


def is_finetune_run(path: str | Path) -> bool:
    """True for a run directory written by ``fromzero finetune``."""
    return (Path(path) / INFO_FILE).is_file()


def build_head(backbone: nn.Module, kind: str, num_labels: int, *, problem: str = "single_label",
               pooling: str | None = None, dropout: float | None = None) -> nn.Module:
    """Wrap ``backbone`` in the head of ``kind`` (its parameters under ``head.``); ``sft`` and ``seq2seq``: none."""
    if kind == "seq2seq":  # the encoder-decoder itself generates: no head, T5's own parameter names
        if not all(hasattr(backbone, a) for a in ("encode", "decode", "new_cache")):
            raise ConfigError(f"task.kind: seq2seq needs an encoder-decoder (t5) base run, got a "
                              f"{type(backbone).__name__}; pretrain one with `fromzero pretrain recipes/t5_bible.yaml`")
        return backbone
    if kind == "sft":  # causal-LM fine-tuning uses the model's own LM head: parameter names stay the family's
        return backbone
    if kind == "token_classification":
        return TokenClassifier(backbone, num_labels, dropout=dropout)
    if kind == "span_qa":
        return SpanQA(backbone)
    return SequenceClassifier(backbone, num_labels, problem=problem, pooling=pooling, dropout=dropout)


def load_finetuned_model(run_dir: str | Path, device: str = "cpu") -> FinetunedModel:
    """Load a fine-tuned run directory: backbone + head with the trained weights, tokenizer, labels."""
    path = Path(run_dir)
    if not is_finetune_run(path):
        raise CheckpointError(f"{path}: not a fine-tuned run (no {INFO_FILE}); pass a folder written by "
                              "`fromzero finetune`")
    info = json.loads((path / INFO_FILE).read_text())
    config = load_yaml(path / "config.yaml") if (path / "config.yaml").is_file() else {}
    task = config.get("task") or {}
    cfg = model_config(info["family"], info["model"], file=str(path / INFO_FILE))
    model = build_head(build_model(cfg), info.get("kind") or task.get("kind", "sequence_classification"),
                       info["num_labels"], problem=info.get("problem") or task.get("problem", "single_label"),
                       pooling=info.get("pooling") or task.get("pooling"), dropout=task.get("dropout"))
    weights = path / "model.safetensors"
    load_weights(model, weights, INFO_FILE, device)
    vocab = LabelVocab(info["labels"]) if info.get("labels") else None
    if not (path / "tokenizer.json").is_file():
        raise CheckpointError(f"{path}: tokenizer.json is missing; the run directory is incomplete")
    tokenizer = Tokenizer.load(path / "tokenizer.json")
    return FinetunedModel(path, model.to(device).eval(), tokenizer, vocab, info, config)
