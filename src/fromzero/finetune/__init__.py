"""Fine-tuning: every method and its runner, from a base run directory and a recipe to a fine-tuned run.

    recipe.py          the fine-tuning recipe: base run, task, method, selection metric
    methods.py         full / partial / LoRA as transformations of a built model; the task's head and loss
    freeze.py          partial fine-tuning: which parameters freeze, by name
    lora.py            LoRA wiring: adapters swapped in, trained, merged, saved and loaded
    name_patterns.py   glob selection of parameter and layer names (freeze and LoRA)
    task_dataset.py    a task's files -> encoded splits -> batches (classification, tagging, QA, SFT, seq2seq)
    predict.py         a model's decoded predictions on a split
    sft.py             supervised fine-tuning of a causal LM: checks, majority replies, samples
    runner.py          ``finetune()``: what ``fromzero finetune`` runs
    resume.py          what a fine-tune's checkpoint holds; which recipe changes a resume refuses
    evaluate.py        scoring a fine-tuned run on its test copy (``fromzero eval``)
    info.py            ``fromzero info`` on a fine-tuned run
    self_training.py   pseudo-labeling rounds over an unlabeled pool (``fromzero self-train``)

Continued pretraining (``init: RUN_DIR`` in a pretraining recipe) runs the
pretraining objective, so it lives with pretraining: ``fromzero.pretrain.continued``.
"""

from fromzero.finetune.freeze import FreezeConfig, TrainableSummary, apply_freeze, frozen_names, trainable_summary
from fromzero.finetune.lora import (
    LoRAConfig,
    apply_lora,
    load_adapter,
    lora_modules,
    lora_state_dict,
    mark_only_lora_trainable,
    merge_lora,
    save_adapter,
)
from fromzero.nn.lora import LoRALinear

__all__ = [
    "FreezeConfig", "LoRAConfig", "LoRALinear", "TrainableSummary", "apply_freeze", "apply_lora", "frozen_names",
    "load_adapter", "lora_modules", "lora_state_dict", "mark_only_lora_trainable", "merge_lora", "save_adapter",
    "trainable_summary",
]
