"""A fine-tuned text classifier seen the way explanations and attacks need it: token ids in, scores out.

Texts are framed exactly as fine-tuning framed them (``data.task_encoding.Framing``: [CLS] a [SEP] for
BERT vocabularies, ``a <eos>`` otherwise), cut to the run's ``max_len``. The score of a class is what
the head's problem turns a logit into: softmax probability (single-label), sigmoid (multi-label) or the
raw value (regression). :func:`logits_from_embeddings` runs the model with the token-embedding layer's
output replaced, which is how attributions and attacks work on the continuous embedding space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fromzero.data.task_encoding import Framing, collate
from fromzero.data.truncation import fit_length
from fromzero.errors import CheckpointError, ConfigError
from fromzero.runs import Run, load_run


@dataclass
class TextClassifier:
    """A sequence-classification run: its model (eval mode), tokenizer, framing and label names."""

    run: Run
    model: nn.Module
    framing: Framing
    labels: list[str]
    problem: str

    @property
    def embedding(self) -> nn.Embedding:
        """The token-embedding layer of the backbone (``tok_emb``), where attributions and attacks act."""
        return self.model.backbone.tok_emb

    @property
    def special_ids(self) -> set[int]:
        """Framing tokens and the tokenizer's special tokens: never attributed, perturbed or substituted."""
        tok = self.run.tokenizer
        ids = {tok.token_to_id(t) for t in tok.special_tokens}
        return {i for i in ids if i is not None} | set(self.framing.prefix + self.framing.between +
                                                       self.framing.suffix) | {self.framing.pad_id}

    def encode(self, text: str) -> dict[str, list[int]]:
        """One text -> a feature (``input_ids``, ``token_type_ids``) framed as fine-tuning framed it."""
        budget = self.run.max_len - self.framing.n_special()
        ids, types = self.framing.frame(fit_length(self.run.tokenizer.encode(text), budget))
        return {"input_ids": ids, "token_type_ids": types}

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """Each id's token string (for display)."""
        return [self.run.tokenizer.id_to_token(int(i)) or f"<{int(i)}>" for i in ids]

    def batch(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        """Features -> padded tensors (``input_ids``, ``attention_mask``, ``token_type_ids``, ``labels`` if given)."""
        return collate([{k: f[k] for k in f if k in ("input_ids", "token_type_ids", "labels")} for f in features],
                       self.framing.pad_id)

    def forward_kwargs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The keyword arguments the head takes from a batch (token types only for BERT framing)."""
        kwargs = {"attention_mask": batch["attention_mask"]}
        if self.framing.token_types and "token_type_ids" in batch:
            kwargs["token_type_ids"] = batch["token_type_ids"]
        return kwargs

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, K) logits of a batch."""
        return self.model(batch["input_ids"], **self.forward_kwargs(batch)).float()

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> what a class's score means for this problem (probability or value)."""
        return class_scores(logits, self.problem)

    def target_index(self, label: str | None) -> int | None:
        """A ``--target`` label name (or index) -> its class index; None stays None (the predicted class)."""
        if label is None:
            return None
        if label in self.labels:
            return self.labels.index(label)
        if label.isdigit() and int(label) < len(self.labels):
            return int(label)
        raise ConfigError(f"--target: {label!r} is not a label of {self.run.path}; choose one of "
                          f"{', '.join(self.labels)}")


def class_scores(logits: torch.Tensor, problem: str) -> torch.Tensor:
    """softmax (single_label), sigmoid (multi_label) or identity (regression) over the last axis."""
    if problem == "single_label":
        return torch.softmax(logits, dim=-1)
    if problem == "multi_label":
        return torch.sigmoid(logits)
    return logits


def logits_from_embeddings(model: nn.Module, layer: nn.Module, embeddings: torch.Tensor, input_ids: torch.Tensor,
                           **kwargs: torch.Tensor) -> torch.Tensor:
    """The model's output with ``layer``'s output replaced by ``embeddings`` (B, T, C) (a forward hook, so
    positions, token types and everything after the embedding stay the model's own)."""
    handle = layer.register_forward_hook(lambda module, args, out: embeddings)
    try:
        return model(input_ids, **kwargs)
    finally:
        handle.remove()


def load_classifier(run_dir: str | Path, command: str, *, run: Run | None = None) -> TextClassifier:
    """Open a fine-tuned sequence-classification run; any other run is a one-line CheckpointError."""
    run = run or load_run(run_dir)
    run.require_text(command)
    if run.kind != "sequence_classification":
        raise CheckpointError(f"{run.path}: a {run.kind} run; `fromzero {command}` needs a fine-tuned "
                              "sequence_classification run (task.kind: sequence_classification), e.g. "
                              "`fromzero finetune recipes/finetune_trec_lora.yaml`")
    if not isinstance(getattr(getattr(run.model, "backbone", None), "tok_emb", None), nn.Embedding):
        raise CheckpointError(f"{run.path}: the backbone has no token-embedding layer (tok_emb); "
                              f"`fromzero {command}` cannot act on its embeddings")
    n = int(run.info["num_labels"])
    labels = list(run.vocab.labels) if run.vocab is not None else [f"value_{i}" for i in range(n)]
    return TextClassifier(run, run.model, Framing.for_tokenizer(run.tokenizer), labels, run.problem)
