"""Fine-tuning methods as transformations of a built model, and the task's head and objective.

    full     everything trains
    partial  ``method.freeze`` chooses what stays frozen (``finetune.freeze``)
    lora     low-rank adapters are swapped in; only they (and the new task head) train (``finetune.lora``)

The model, the objective and the Trainer stay the same as for pretraining: a
method only changes which parameters train, or swaps modules in place.
"""

from __future__ import annotations

from torch import nn

from fromzero.errors import ConfigError
from fromzero.finetune.freeze import TrainableSummary, apply_freeze, trainable_summary
from fromzero.finetune.lora import apply_lora, mark_only_lora_trainable
from fromzero.finetune.recipe import FinetuneRecipe, TaskConfig
from fromzero.models.heads import build_head
from fromzero.objectives import CausalLM, Objective, Seq2SeqLM, SequenceClassification, SpanQA, TokenClassification


def build_task_model(backbone: nn.Module, task: TaskConfig, num_labels: int) -> nn.Module:
    """Wrap ``backbone`` in the head of ``task.kind`` (its parameters under ``head.``)."""
    return build_head(backbone, task.kind, num_labels, problem=task.problem, pooling=task.pooling,
                      dropout=task.dropout)


def task_objective(task: TaskConfig, weights: list[float] | None) -> Objective:
    """The loss of ``task.kind`` (``weights``: class weights of a classification task, or None)."""
    if task.kind == "token_classification":
        return TokenClassification(weights)
    if task.kind == "span_qa":
        return SpanQA()
    if task.kind == "sft":  # next-token cross-entropy on the scored (reply) tokens
        return CausalLM()
    if task.kind == "seq2seq":
        return Seq2SeqLM(task.label_smoothing)
    return SequenceClassification(task.problem, weights)


def head_globs(recipe: FinetuneRecipe) -> list[str]:
    """Parameters that train beside LoRA adapters: the new task head (sft and seq2seq runs have none: the
    model's own output layer is reused)."""
    return ["head.*"] if recipe.method.train_head and recipe.task.kind not in ("sft", "seq2seq") else []


def apply_method(model: nn.Module, recipe: FinetuneRecipe) -> tuple[TrainableSummary, list[str]]:
    """Full: everything trains. Partial: freeze by ``method.freeze``. LoRA: adapters (+ the head) train."""
    method, adapted = recipe.method, []
    if method.name == "lora":
        cfg = method.lora
        adapted = apply_lora(model, cfg.targets, cfg.rank, cfg.alpha, cfg.dropout)
        mark_only_lora_trainable(model, head_globs(recipe))
    if method.freeze.active:
        apply_freeze(model, method.freeze)
    summary = trainable_summary(model)
    if summary.trainable == 0:
        raise ConfigError("method: nothing is left to train; freeze less")
    return summary, adapted
