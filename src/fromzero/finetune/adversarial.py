"""Adversarial training on token embeddings: FGM and PGD as an objective wrapper (the Trainer is untouched).

With e the token-embedding layer's output (B, T, C), m the mask of real (unpadded) positions, L(e) the task
loss and g = dL/de at the clean embeddings, each example b gets a perturbation r_b with ||r_b||_2 <= eps:

    FGM (Miyato et al., 2017)   r = eps * m g / ||m g||_2
    PGD (Madry et al., 2018)    d_0 = 0;  d_{k+1} = P_eps(d_k + alpha * m g_k / ||m g_k||_2),  g_k = dL/de at e + d_k
                                r = d_K;  P_eps scales d back onto the ball when ||d||_2 > eps

(norms per example, over all its positions and channels; FGM is PGD with one step of alpha = eps). The loss
the optimiser sees is the weighted mean of the clean and the adversarial loss,

    L_total = (L(e) + w * L(e + r)) / (1 + w)

so eps = 0 trains exactly as without the option (same loss, same gradients; dropout aside) and the learning
rate keeps its meaning. r is a constant for the parameters' gradient (as in both papers): gradients flow
through the clean and the perturbed forward pass, not through how r was found. Evaluation (no gradients)
runs the clean objective alone. The recipe section is ``adversarial:`` (:class:`AdversarialConfig`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from fromzero.config import field
from fromzero.errors import ConfigError
from fromzero.objectives import Objective, ObjectiveOutput
from fromzero.objectives.adversarial_options import AdversarialOptions


@dataclass(frozen=True)
class AdversarialConfig(AdversarialOptions):
    """Adversarial training: perturb the token embeddings toward a higher loss and train on both."""

    eps: float = field(1.0, help="radius of each example's perturbation, L2 norm over its tokens' embeddings")


def token_embedding(model: nn.Module) -> nn.Embedding:
    """The token-embedding layer the perturbation acts on: ``backbone.tok_emb`` of a task head (DDP unwrapped)."""
    inner = getattr(model, "module", model)
    layer = getattr(getattr(inner, "backbone", inner), "tok_emb", None)
    if not isinstance(layer, nn.Embedding):
        raise ConfigError("adversarial: the model has no token-embedding layer (backbone.tok_emb); set "
                          "adversarial.method: none")
    return layer


def unit_direction(grad: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """m g / ||m g||_2 per example (norm over every axis but the first); zero where the gradient is zero."""
    g = grad * mask
    norm = g.flatten(1).norm(dim=1).clamp_min(torch.finfo(g.dtype).tiny)
    return g / norm.view(-1, *([1] * (g.dim() - 1)))


def project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale each example's perturbation back onto the L2 ball of radius eps where it lies outside."""
    norm = delta.flatten(1).norm(dim=1).clamp_min(torch.finfo(delta.dtype).tiny)
    scale = torch.clamp(eps / norm, max=1.0)
    return delta * scale.view(-1, *([1] * (delta.dim() - 1)))


@contextlib.contextmanager
def _embeddings(layer: nn.Module, delta: torch.Tensor | None, seen: list[torch.Tensor]) -> Iterator[None]:
    """Within the block the layer's output is recorded in ``seen`` and, when ``delta`` is given, shifted by it."""
    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        if delta is not None:
            out = out + delta.to(out.dtype)
        elif not out.requires_grad:  # a frozen embedding table (LoRA, partial): dL/de is still needed
            out = out.detach().requires_grad_(True)
        seen.append(out)
        return out

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class AdversarialObjective:
    """Wraps a task objective: the clean loss plus the loss at FGM / PGD-perturbed embeddings (module docstring).

    Metrics: the clean objective's, plus ``adv_<name>`` of the perturbed pass (``adv_loss``, ``adv_accuracy``)."""

    def __init__(self, inner: Objective, cfg: AdversarialConfig) -> None:
        self.inner, self.cfg = inner, cfg

    def perturbation(self, model: nn.Module, batch: dict[str, torch.Tensor], grad: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
        """r of the batch, starting from ``grad`` = dL/de at the clean embeddings."""
        steps, alpha = self.cfg.plan()
        layer = token_embedding(model)
        delta = project(alpha * unit_direction(grad, mask), self.cfg.eps)
        for _ in range(steps - 1):
            delta = delta.detach().requires_grad_(True)
            with _embeddings(layer, delta, []):
                loss = self.inner(model, batch).loss
            (g,) = torch.autograd.grad(loss, delta)
            delta = project(delta + alpha * unit_direction(g, mask), self.cfg.eps)
        return delta.detach()

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        if not torch.is_grad_enabled():  # evaluation: the clean objective
            return self.inner(model, batch)
        layer, seen = token_embedding(model), []
        with _embeddings(layer, None, seen):
            clean = self.inner(model, batch)
        if not seen:
            raise ConfigError("adversarial: the model never called its token-embedding layer; set "
                              "adversarial.method: none")
        emb = seen[0]
        mask = batch.get("attention_mask", torch.ones(emb.shape[:2], device=emb.device))
        mask = mask.to(emb.dtype).unsqueeze(-1)  # (B, T, 1): padding never moves
        (grad,) = torch.autograd.grad(clean.loss, emb, retain_graph=True)
        delta = self.perturbation(model, batch, grad, mask)
        with _embeddings(layer, delta, []):
            adv = self.inner(model, batch)
        w = self.cfg.weight
        loss = (clean.loss + w * adv.loss) / (1 + w)
        metrics = {**clean.metrics, **{f"adv_{k}": v for k, v in adv.metrics.items()}}
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=clean.weight)


def adversarial_objective(inner: Objective, cfg: AdversarialConfig) -> Objective:
    """``inner`` wrapped for adversarial training, or ``inner`` itself when ``cfg.method`` is none."""
    return AdversarialObjective(inner, cfg) if cfg.active else inner
