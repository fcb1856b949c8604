"""What a fine-tune adds around the Trainer (its :class:`~fromzero.train.hooks.TrainerHooks`).

    extra_metrics       the task's metrics over the validation set (``scorer`` of the decoded predictions)
    on_best             a copy of the trainable tensors at the best evaluation (frozen ones never change)
    checkpoint_weights  the trainable tensors only: the frozen ones are rebuilt from the base run and the
                        recipe on resume, so a LoRA checkpoint is a few MB, not the whole backbone
    checkpoint_extras   ``best.safetensors``: the best evaluation's tensors, so a resumed run keeps its
                        best-checkpoint selection (the best step and value are the Trainer's state)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fromzero.errors import CheckpointError
from fromzero.eval.task_metrics import Scorer
from fromzero.finetune.predict import task_outputs
from fromzero.finetune.task_dataset import TaskData
from fromzero.train.checkpoint import Checkpoint, load_checkpoint_tensors
from fromzero.train.hooks import TrainerHooks

BEST_FILE = "best"  # checkpoint extra: best.safetensors


class FinetuneHooks(TrainerHooks):
    """Validation scoring, best-weights tracking and trainable-only checkpoints for one fine-tune."""

    owns_weights = True

    def __init__(self, model: nn.Module, data: TaskData, scorer: Scorer, eval_examples: int | None) -> None:
        self.model, self.data, self.scorer, self.eval_examples = model, data, scorer, eval_examples
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_step: int | None = None

    def _trainable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def extra_metrics(self, model: nn.Module) -> dict[str, float]:
        return self.scorer(task_outputs(model, self.data, "validation", limit=self.eval_examples))

    def on_best(self, step: int, metrics: dict[str, float]) -> None:
        self.best_step = step
        self.best_state = {n: p.detach().clone() for n, p in self._trainable().items()}

    @torch.no_grad()
    def _load_trainable(self, tensors: dict[str, torch.Tensor]) -> None:
        params = self._trainable()
        for name, value in tensors.items():
            params[name].copy_(value)

    def restore_best(self) -> None:
        """Put the best evaluation's trainable tensors back into the model (no-op before any evaluation)."""
        if self.best_state is not None:
            self._load_trainable(self.best_state)

    def checkpoint_weights(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self._trainable().items()}

    def checkpoint_extras(self) -> dict[str, dict[str, torch.Tensor]]:
        return {BEST_FILE: self.best_state} if self.best_state is not None else {}

    def restore(self, ckpt: Checkpoint, payload: dict[str, Any]) -> None:
        """Copy the saved trainable tensors into the model; reinstate the best weights and step."""
        params = self._trainable()
        saved = load_checkpoint_tensors(ckpt, "model") or {}
        if set(saved) != set(params):
            missing, unexpected = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
            raise CheckpointError(f"{ckpt.path}/model.safetensors does not hold this fine-tune's trainable tensors: "
                                  f"missing {missing[:3]}, unexpected {unexpected[:3]}; was the method changed?")
        self._load_trainable(saved)
        best = load_checkpoint_tensors(ckpt, BEST_FILE)
        device = next(iter(params.values())).device
        self.best_state = {n: t.to(device) for n, t in best.items()} if best is not None else None
        self.best_step = payload["trainer"].get("best_step") if best is not None else None
