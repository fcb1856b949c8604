"""Fine-tuning methods as transformations of a built model: freezing and LoRA.

Each method changes which parameters train (or swaps modules in place); the
model, objective and Trainer stay the same as for pretraining.
"""

from fromzero.finetune.freeze import (
    FreezeConfig,
    TrainableSummary,
    apply_freeze,
    frozen_names,
    trainable_summary,
)
from fromzero.nn.lora import (
    LoRAConfig,
    LoRALinear,
    apply_lora,
    load_adapter,
    lora_state_dict,
    mark_only_lora_trainable,
    merge_lora,
    save_adapter,
)

__all__ = [
    "FreezeConfig", "LoRAConfig", "LoRALinear", "TrainableSummary", "apply_freeze", "apply_lora", "frozen_names",
    "load_adapter", "lora_state_dict", "mark_only_lora_trainable", "merge_lora", "save_adapter",
    "trainable_summary",
]
