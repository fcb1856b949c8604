"""Calibration batches: a few batches of a run's own held-out data, for the methods that look at activations.

Wanda (pruning) weighs each weight by the norm of the inputs it sees, GPTQ (quantization) needs each layer's
input covariance, and every compressed model is compared with its source on the same inputs. Those inputs
come from the run itself: a pretraining run's validation shards (``data/``, batched as its objective batches
them) or a fine-tune's validation copy, so no extra file is needed and the statistics match the data the
model is evaluated on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fromzero.data.shards import load_shards
from fromzero.errors import DataError
from fromzero.finetune.evaluate import FinetunedRun, finetuned_task_data, load_finetune_recipe
from fromzero.models import context_length
from fromzero.pretrain.recipe import PretrainRecipe
from fromzero.pretrain.tasks import get_task
from fromzero.runs import Run

# what a model's forward takes besides input_ids (the rest of a batch are labels)
MODEL_INPUTS = ("attention_mask", "token_type_ids", "decoder_input_ids", "decoder_attention_mask")


def _pretraining_batches(run: Run, n: int, batch_size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    task = get_task(run.config["objective"]["name"])
    objective_cfg = PretrainRecipe(objective=run.config["objective"]).objective_config()
    train_tokens, val_tokens, _ = load_shards(run.path / "data")
    seq_len = (run.config.get("train") or {}).get("seq_len") or context_length(run.model_config)
    _, val_src = task.batches(train_tokens, val_tokens, run.tokenizer, seq_len, batch_size, seed, objective_cfg)
    if val_src is None:
        raise DataError(f"{run.path / 'data'}: the validation split is too small for calibration batches; "
                        "pretrain with a larger data.val_fraction")
    return [val_src.batch(i, 0) for i in range(n)]


def _finetune_batches(run: Run, n: int, batch_size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    recipe = load_finetune_recipe(run.path / "config.yaml")
    tuned = FinetunedRun(**{k: getattr(run, k) for k in run.__dataclass_fields__}, recipe=recipe)
    batches = finetuned_task_data(tuned, "validation").batches("validation", batch_size, seed, shuffle=True)
    return [batches.batch(i % len(batches), 0) for i in range(min(n, len(batches)))]


def calibration_batches(run: Run, n: int, batch_size: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``n`` batches (fewer if the validation split is smaller) of ``run``'s held-out data, labels included;
    feed them to the model with :func:`forward`."""
    if n < 1:
        return []
    if run.finetuned:
        return _finetune_batches(run, n, batch_size, seed)
    if "objective" not in run.config or not (run.path / "data").is_dir():
        raise DataError(f"{run.path}: no data/ shards to draw calibration batches from (an imported run has "
                        "none); pass --calibration 0 or use a run trained by fromzero")
    return _pretraining_batches(run, n, batch_size, seed)


def forward_inputs(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The keyword inputs of a batch that its model's forward takes."""
    return {k: batch[k] for k in MODEL_INPUTS if batch.get(k) is not None}


def forward(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits on a batch, as its objective computes them: (B, T, V) for language models
    (BERT: the masked-LM head over every position), (B, K) or (B, T, K) for task heads."""
    out = model(batch["input_ids"], **forward_inputs(batch))
    mlm_logits = getattr(model, "mlm_logits", None)
    return mlm_logits(out) if callable(mlm_logits) else out
