"""Knowledge distillation: a student learns from a teacher's softened predictions and the hard labels.

Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network" (https://arxiv.org/abs/1503.02531).
For student logits z_s, teacher logits z_t, temperature T and hard labels y:

    p_t = softmax(z_t / T),  p_s = softmax(z_s / T)
    KD  = (1/N) sum_{n scored} sum_v p_t[n, v] (log p_t[n, v] - log p_s[n, v])      KL(p_t || p_s)
    L   = alpha * T^2 * KD + (1 - alpha) * CE(z_s, y)

The T^2 keeps the soft term's gradients on the scale of the hard term's as T changes (the gradient of
KD scales as 1/T^2). A scored position n is one example of a sequence classifier (logits (B, K)), or one
token of a language model or tagger (logits (B, T, V)) whose label is not ``IGNORE_INDEX`` (padding, a
prompt under ``loss_mask``), exactly the positions the hard-label loss scores.

CE is the task objective's own loss (class weights and all), and the task's metrics are reported
unchanged (``loss`` stays the hard-label loss, so ``val_loss`` / ``val_ppl`` compare with the teacher's
and with a student trained without a teacher); ``kd_loss`` (T^2 * KD), ``ce_loss`` and
``distill_loss`` (L) are added.

A teacher may keep only its top-k logits per position (``TeacherLogits.indices``): p_t is then the
softmax over those k logits and KD sums over them, with log p_s taken from the student's full softmax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives.base import Objective, ObjectiveOutput


@dataclass
class TeacherLogits:
    """A teacher's logits on a batch: dense (..., V), or its top-k values (..., k) with their ``indices``."""

    logits: torch.Tensor
    indices: torch.Tensor | None = None


# batch -> the teacher's logits on it (computed live, or read from a cache)
TeacherSource = Callable[[dict[str, torch.Tensor]], TeacherLogits]


class RecordingModel:
    """Stands in for a model inside an objective: calls it and keeps its output (the logits), so a
    task objective computes its own loss and metrics while distillation reads the same logits."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.output = model, None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.output = self.model(*args, **kwargs)
        return self.output

    def __getattr__(self, name: str) -> Any:  # e.g. ``problem`` of a classifier head
        return getattr(self.model, name)


def model_logits(task: Objective, model: nn.Module, batch: dict[str, torch.Tensor]
                 ) -> tuple[ObjectiveOutput, torch.Tensor]:
    """Run ``task`` on ``model`` and return its output and the logits the model produced."""
    recorder = RecordingModel(model)
    out = task(recorder, batch)  # type: ignore[arg-type]
    if not isinstance(recorder.output, torch.Tensor):
        raise TypeError(f"distillation needs a model that returns one logits tensor, got "
                        f"{type(recorder.output).__name__}")
    return out, recorder.output


def scored_positions(batch: dict[str, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
    """(…) bool: the positions the hard-label loss scores (labels not IGNORE_INDEX, within ``loss_mask``)."""
    labels = batch["labels"]
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not index logits of shape "
                         f"{tuple(logits.shape)}: distillation needs one class (or token) label per position")
    scored = labels != IGNORE_INDEX
    if "loss_mask" in batch:
        scored = scored & batch["loss_mask"].bool()
    return scored


def distillation_kl(student: torch.Tensor, teacher: TeacherLogits, temperature: float,
                    scored: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over scored positions of KL(softmax(z_t/T) || softmax(z_s/T)) (without the T^2 factor).

    student (..., V); teacher.logits (..., V), or (..., k) with teacher.indices (..., k); scored (...) bool."""
    log_ps = F.log_softmax(student.float() / temperature, dim=-1)  # (..., V)
    if teacher.indices is not None:
        log_ps = log_ps.gather(-1, teacher.indices.long())  # (..., k): the teacher's kept classes
    log_pt = F.log_softmax(teacher.logits.float() / temperature, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)  # (...)
    if scored is not None:
        kl = kl[scored]
    if kl.numel() == 0:
        return student.sum() * 0.0  # nothing scored: no contribution, graph kept
    return kl.mean()


class LiveTeacher:
    """Teacher logits computed on each batch: the teacher in eval mode, without gradients, through the same
    task objective as the student (so it reads the batch exactly as the student does). ``top_k`` keeps
    the k largest logits per position (all when None or >= the number of classes)."""

    def __init__(self, model: nn.Module, task: Objective, top_k: int | None = None) -> None:
        self.model, self.task, self.top_k = model.eval().requires_grad_(False), task, top_k

    def __call__(self, batch: dict[str, torch.Tensor]) -> TeacherLogits:
        device = batch["input_ids"].device
        if next(self.model.parameters()).device != device:
            self.model.to(device)
        self.model.eval()
        with torch.no_grad():
            _, logits = model_logits(self.task, self.model, batch)
        logits = logits.float()
        if self.top_k and self.top_k < logits.shape[-1]:
            values, indices = logits.topk(self.top_k, dim=-1)
            return TeacherLogits(values, indices)
        return TeacherLogits(logits)


class Distillation:
    """The distillation objective around a task objective (see the module docstring).

    ``teacher`` gives the teacher's logits for a batch (:class:`LiveTeacher`, or a cache of them)."""

    def __init__(self, task: Objective, teacher: TeacherSource, alpha: float = 0.5, temperature: float = 2.0) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.task, self.teacher, self.alpha, self.temperature = task, teacher, alpha, temperature

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        out, logits = model_logits(self.task, model, batch)
        teacher = self.teacher(batch)
        kd = self.temperature ** 2 * distillation_kl(logits, teacher, self.temperature, scored_positions(batch, logits))
        loss = self.alpha * kd + (1.0 - self.alpha) * out.loss
        metrics = {**out.metrics, "kd_loss": kd.detach(), "ce_loss": out.loss.detach(), "distill_loss": loss.detach()}
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=out.weight)
