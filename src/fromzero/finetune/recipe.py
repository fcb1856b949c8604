"""The fine-tuning recipe: a base run directory, a task, a method; validated before any work starts.

    seed: 0
    out: runs/finetune_trec_lora
    base: runs/all-minilm-l6-v2                 # any run directory (pretrained here or `fromzero import-hf`)
    task:
      kind: sequence_classification             # | token_classification | span_qa | sft | seq2seq
      train: data/trec/train.jsonl
      validation: data/trec/validation.jsonl
      test: data/trec/test.jsonl
      max_len: 32
      preprocess: [lowercase]                   # optional text steps (data/preprocessing.py)
    method: {name: lora, lora: {rank: 8, targets: ["*attn.qkv", "*attn.proj", "*mlp.fc", "*mlp.proj"]}}
    select_metric: f1_macro                     # early stopping and best-checkpoint selection
    train: {max_steps: 300, batch_size: 32, early_stop_patience: 3}
    optim: {lr: 1e-3}

Every key can be overridden on the command line: ``--method.lora.rank=16``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fromzero.config import apply_overrides, field, from_dict, load_yaml, require, to_dict
from fromzero.data.chat_template import TEMPLATES
from fromzero.data.preprocessing import STEPS, check_steps
from fromzero.finetune.adversarial import AdversarialConfig
from fromzero.finetune.freeze import FreezeConfig
from fromzero.finetune.lora import LoRAConfig
from fromzero.runs import is_finetune_recipe_data
from fromzero.train.optim import OptimConfig
from fromzero.train.trainer import TrainConfig

TaskKind = Literal["sequence_classification", "token_classification", "span_qa", "sft", "seq2seq"]
# Validation metrics each task kind can select on (maximised; "loss" is minimised).
SELECT_METRICS = {
    "sequence_classification": ("accuracy", "f1_macro", "f1_micro", "loss"),
    "token_classification": ("f1", "token_accuracy", "loss"),
    "span_qa": ("exact_match", "f1", "loss"),
    "sft": ("exact_match", "f1", "loss"),
    "seq2seq": ("bleu", "chrf", "loss"),
}
# Sequence-classification problems whose metrics differ from single-label ones. Direction follows
# train.trainer.lower_is_better: loss, mse and mae are minimised, the rest maximised. Macro ROC-AUC is
# not offered: it is undefined (skipped) when a label column is constant in the validation split.
SELECT_METRICS_BY_PROBLEM = {
    "multi_label": ("subset_accuracy", "f1_macro", "f1_micro", "roc_auc_micro", "loss"),
    "regression": ("mse", "mae", "r2", "pearson", "spearman", "loss"),
}


def select_metric_choices(task: TaskConfig) -> tuple[str, ...]:
    """The validation metrics ``select_metric`` may name for ``task`` (its kind, and problem)."""
    if task.kind == "sequence_classification" and task.problem in SELECT_METRICS_BY_PROBLEM:
        return SELECT_METRICS_BY_PROBLEM[task.problem]
    return SELECT_METRICS[task.kind]


@dataclass(frozen=True)
class TaskConfig:
    """The labelled data and how it becomes model inputs."""

    kind: TaskKind = field("sequence_classification", help="which head and objective")
    problem: Literal["single_label", "multi_label", "regression"] = field(
        "single_label", help="sequence classification only")
    train: str = field("", help="training file (.jsonl/.csv/.tsv; CoNLL for tagging; SQuAD JSON for QA; "
                                "seq2seq: source<TAB>target .tsv or .jsonl with source/target)")
    validation: str = field("", help="validation file: early stopping and best-checkpoint selection")
    test: str | None = field(None, help="test file scored into eval.json (null: the validation file)")
    format: Literal["jsonl", "csv", "tsv"] | None = field(None, help="classification file format (null: suffix)")
    text_field: str = field("text", help="column / key holding the text")
    pair_field: str = field("text_pair", help="column / key holding an optional second segment")
    label_field: str = field("label", help="column / key holding the label")
    max_len: int = field(128, help="tokens per sequence including special tokens")
    truncation: Literal["truncate", "error"] = field("truncate", help="over-long inputs: cut (counted) or stop")
    class_weights: Literal["none", "balanced"] = field("none", help="'balanced': n / (K * n_k) loss weights")
    pooling: Literal["cls", "first", "last", "mean"] | None = field(None, help="null: the family's default")
    dropout: float | None = field(None, help="head dropout (null: the backbone's)")
    # supervised fine-tuning (kind: sft) of a causal LM on conversations; see docs/12-instruction-tuning.md
    chat_template: str = field("plain", help="sft: chat template that renders conversations (its stop strings "
                                             "end replies); serving uses the same one")
    prompt_loss: bool = field(False, help="sft: score every token (true, an ablation) or only assistant replies")
    eval_examples: int = field(200, help="sft / seq2seq: validation examples answered or decoded at each "
                                         "evaluation; 0 = all (the test split is always scored whole)")
    max_new_tokens: int = field(32, help="sft: longest reply generated in evaluation, in tokens (plus room for "
                                             "the template's stop string)")
    eval_base: bool = field(False, help="sft: also score the base model zero-shot on the test split")
    max_target_len: int | None = field(None, help="seq2seq: target tokens incl. eos, also the decoding limit "
                                       "(null: max_len)")
    reverse: bool = field(False, help="seq2seq: swap each pair's sides (translate target -> source, e.g. the "
                                      "es -> en direction from en -> es files)")
    group_by_length: bool = field(False, help="training batches of similar lengths (seeded pools of 50 batches "
                                              "sorted by length): less padding, same examples per epoch")
    label_smoothing: float = field(0.0, help="seq2seq: mix eps of uniform into each target (0.1 is the "
                                             "Transformer's for translation)")
    beam_size: int = field(1, help="seq2seq: beam width for validation and test decoding (1 = greedy)")
    length_penalty: float = field(0.6, help="seq2seq beam search: GNMT length-penalty exponent alpha "
                                            "(0 = none; higher favours longer outputs)")
    preprocess: list[str] = field([], help="sequence classification: text steps applied in order to every split "
                                           f"and at serving ({', '.join(STEPS)}; data/preprocessing.py)")

    def __post_init__(self) -> None:
        require(bool(self.train), "train", "required: the training data file")
        require(bool(self.validation), "validation", "required: the validation data file")
        require(self.max_len > 2, "max_len", f"must be > 2, got {self.max_len}")
        require(0 <= self.label_smoothing < 1 and (self.label_smoothing == 0 or self.kind == "seq2seq"),
                "label_smoothing", f"must be in [0, 1) and only for seq2seq, got {self.label_smoothing}")
        require(not self.reverse or self.kind == "seq2seq", "reverse", f"only for seq2seq, not {self.kind}")
        require(self.beam_size >= 1, "beam_size", f"must be >= 1 (1 = greedy), got {self.beam_size}")
        require(self.length_penalty >= 0, "length_penalty", f"must be >= 0, got {self.length_penalty}")
        require(self.max_target_len is None or self.max_target_len > 1, "max_target_len",
                f"must be > 1 or null, got {self.max_target_len}")
        require(self.kind == "sequence_classification" or self.problem == "single_label", "problem",
                "only sequence classification has a problem type")
        require(self.class_weights == "none" or self.problem == "single_label" or
                self.kind == "token_classification", "class_weights", "balanced weights need single-label classes")
        require(self.chat_template in TEMPLATES, "chat_template",
                f"unknown chat template {self.chat_template!r}; known: {', '.join(sorted(TEMPLATES))}")
        require(self.eval_examples >= 0, "eval_examples", f"must be >= 0, got {self.eval_examples}")
        require(self.max_new_tokens > 0, "max_new_tokens", f"must be > 0, got {self.max_new_tokens}")
        require(not self.preprocess or self.kind == "sequence_classification", "preprocess",
                f"text steps apply to sequence_classification, not {self.kind} (they would move spans and tags)")
        check_steps(self.preprocess, "preprocess")


@dataclass(frozen=True)
class MethodConfig:
    """How much of the model trains: everything, a chosen part, or low-rank adapters."""

    name: Literal["full", "partial", "lora"] = field("full", help="full | partial (freeze:) | lora (lora:)")
    freeze: FreezeConfig = field(default_factory=FreezeConfig, help="partial: which parameters freeze")
    lora: LoRAConfig = field(default_factory=LoRAConfig, help="lora: adapter rank, alpha, dropout, targets")
    train_head: bool = field(True, help="lora: the new task head trains too (it starts random)")

    def __post_init__(self) -> None:
        require(self.name != "partial" or self.freeze.active, "freeze",
                "method 'partial' needs something to freeze (e.g. freeze.head_only: true)")
        require(self.name != "full" or not self.freeze.active, "freeze",
                "method 'full' trains everything; use name: partial to freeze")


@dataclass(frozen=True)
class FinetuneRecipe:
    """A complete fine-tuning run."""

    base: str = field("", help="run directory to start from (`fromzero pretrain` or `fromzero import-hf`)")
    task: TaskConfig = field(default_factory=TaskConfig, help="data and head")
    method: MethodConfig = field(default_factory=MethodConfig, help="full, partial or LoRA")
    select_metric: str = field("loss", help="validation metric for early stopping and the best checkpoint")
    train: TrainConfig = field(default_factory=TrainConfig, help="loop settings (early_stop_patience too)")
    optim: OptimConfig = field(default_factory=OptimConfig, help="optimizer and schedule")
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig,
                                           help="FGM / PGD adversarial training on the token embeddings "
                                                "(classification; finetune/adversarial.py)")
    seed: int = field(0, help="fixes head init, adapter init, dropout and data order")
    from_scratch: bool = field(False, help="re-initialise the base model (seeded), keeping its architecture and "
                               "tokenizer: the no-pretraining baseline")
    out: str | None = field(None, help="run directory (default: runs/<recipe name>)")

    def __post_init__(self) -> None:
        require(bool(self.base), "base", "required: a run directory (e.g. from `fromzero import-hf`)")
        choices = select_metric_choices(self.task)
        require(self.select_metric in choices, "select_metric",
                f"{self.select_metric!r} is not one of {', '.join(choices)} for {self.task.kind}"
                + (f" ({self.task.problem})" if self.task.kind == "sequence_classification" else ""))
        require(not self.adversarial.active or self.task.kind in ("sequence_classification", "token_classification"),
                "adversarial.method", f"adversarial training applies to classification tasks, not {self.task.kind}")


def load_finetune_recipe(path: str | Path | None, overrides: list[str] | None = None) -> FinetuneRecipe:
    """Read, override and validate a fine-tuning recipe; every error names the file and the key."""
    file = str(path) if path is not None else "<overrides>"
    data = load_yaml(path) if path is not None else {}
    return from_dict(FinetuneRecipe, apply_overrides(data, overrides or []), file=file)


def is_finetune_recipe(path: str | Path) -> bool:
    """True if a YAML file is a fine-tuning recipe (it has ``base`` and ``task`` sections)."""
    return is_finetune_recipe_data(load_yaml(path))


def recipe_dict(recipe: FinetuneRecipe) -> dict:
    """The resolved recipe as saved in config.yaml (loads back with :func:`load_finetune_recipe`)."""
    return to_dict(recipe)
