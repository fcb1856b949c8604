"""Keep the whole model state of the best evaluation (parameters AND buffers, e.g. BatchNorm statistics),
so the kept model evaluates exactly as it did when it was selected; a resumed run keeps its selection.

    on_best             a copy of ``model.state_dict()`` at each new best evaluation
    checkpoint_extras   ``best.safetensors`` beside each checkpoint's weights
    restore             reads it back on resume (the best step comes from the Trainer's state)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fromzero.train.checkpoint import Checkpoint, load_checkpoint_tensors
from fromzero.train.hooks import TrainerHooks

BEST_FILE = "best"


class BestStateHooks(TrainerHooks):
    """Best-state tracking for runs that train (and checkpoint) their whole model."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_step: int | None = None

    def on_best(self, step: int, metrics: dict[str, float]) -> None:
        self.best_step = step
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore_best(self) -> None:
        """Put the best evaluation's state back (no-op before any evaluation)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def checkpoint_extras(self) -> dict[str, dict[str, torch.Tensor]]:
        return {BEST_FILE: self.best_state} if self.best_state is not None else {}

    def restore(self, ckpt: Checkpoint, payload: dict[str, Any]) -> None:
        best = load_checkpoint_tensors(ckpt, BEST_FILE)
        if best is not None:
            device = next(iter(self.model.state_dict().values())).device
            self.best_state = {k: v.to(device) for k, v in best.items()}
            self.best_step = payload["trainer"].get("best_step")
