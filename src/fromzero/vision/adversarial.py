"""Adversarial training on pixels for image classification: FGSM and PGD as an objective wrapper.

With x the batch's images in [0, 1] pixel space, L(x) the task loss and g = dL/dx, each image gets a
perturbation r with ||r||_inf <= eps (eps in pixel units, e.g. 8/255), and x + r stays in [0, 1]:

    FGSM (Goodfellow et al., 2015)   r = clip(x + eps * sign(g)) - x
    PGD  (Madry et al., 2018)        x_0 = x;  x_{k+1} = clip(P_eps(x_k + alpha * sign(g_k))),  g_k = dL/dx at x_k
                                     r = x_K - x;  alpha = 2.5 eps / steps unless given; no random start

(``explain/perturbation.py`` is the same attack for evaluation; the layers keep vision from importing it, and
the tests check one against the other). Batches hold normalised pixels p = (x - mean) / std, so the attack
runs there: a step of eps in x is eps / std_c in channel c, and [0, 1] is [-mean_c / std_c, (1 - mean_c) / std_c];
sign(dL/dp) = sign(dL/dx) since std > 0. The optimiser sees

    L_total = (L(x) + w * L(x + r)) / (1 + w)

so eps = 0 trains as without the option and the learning rate keeps its meaning; r is a constant for the
parameters' gradient. BatchNorm: only the clean forward pass updates the running statistics (the attack and
adversarial passes run in training mode on batch statistics, and their buffer updates are undone), so the
statistics are those of clean training and a resumed run stays bit-identical. Evaluation runs the clean
objective alone. The recipe section is ``adversarial:`` (:class:`ImageAdversarialConfig`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.objectives import Objective, ObjectiveOutput
from fromzero.objectives.adversarial_options import AdversarialOptions


@dataclass(frozen=True)
class ImageAdversarialConfig(AdversarialOptions):
    """Adversarial training on pixels: an L-inf perturbation toward a higher loss, trained on with the clean batch
    (fgm is FGSM here: one signed-gradient step of eps; pgd's alpha is in pixel units too)."""

    eps: float = field(0.03, help="L-inf radius in [0, 1] pixel units (8/255 ~ 0.031 is the usual choice)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.eps <= 1, "eps", f"must be in [0, 1] (pixel units), got {self.eps}")


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Within the block BatchNorm layers normalise with batch statistics as usual, but their running
    statistics (and ``num_batches_tracked``) are left as they were: the block updates throw-away copies
    (swapped in, not copied back, since the clean pass's autograd graph holds the originals)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    saved = [{k: b for k, b in m.named_buffers(recurse=False) if b is not None} for m in norms]
    for m, buffers in zip(norms, saved, strict=True):
        for k, value in buffers.items():
            setattr(m, k, value.clone())
    try:
        yield
    finally:
        for m, buffers in zip(norms, saved, strict=True):
            for k, value in buffers.items():
                setattr(m, k, value)


class ImageAdversarialObjective:
    """Wraps the image-classification objective: the clean loss plus the loss at FGSM / PGD-perturbed pixels.

    Metrics: the clean objective's, plus ``adv_loss`` / ``adv_accuracy`` of the perturbed pass."""

    def __init__(self, inner: Objective, cfg: ImageAdversarialConfig, mean: list[float], std: list[float]) -> None:
        self.inner, self.cfg = inner, cfg
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def _loss(self, model: nn.Module, batch: dict[str, torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
        return self.inner(model, {**batch, "pixels": pixels}).loss

    def perturbed(self, model: nn.Module, batch: dict[str, torch.Tensor],
                  grad: torch.Tensor | None = None) -> torch.Tensor:
        """The adversarial normalised pixels of the batch (``grad``: dL/dp at the clean pixels, when known)."""
        p0 = batch["pixels"].detach()
        if self.cfg.eps == 0:
            return p0
        std, mean = self.std.to(p0.device), self.mean.to(p0.device)
        low, high = (0 - mean) / std, (1 - mean) / std  # [0, 1] in normalised units
        radius = self.cfg.eps / std
        steps, alpha = self.cfg.plan()
        adv = p0
        for k in range(steps):
            if k > 0 or grad is None:
                x = adv.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self._loss(model, batch, x), x)
            step = adv + (alpha / std) * grad.sign()
            adv = torch.max(torch.min(step, p0 + radius), p0 - radius)  # P_eps
            adv = torch.max(torch.min(adv, high), low).detach()  # pixels stay in [0, 1]
        return adv

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        if not torch.is_grad_enabled():  # evaluation: the clean objective
            return self.inner(model, batch)
        pixels = batch["pixels"].detach().requires_grad_(True)
        clean = self.inner(model, {**batch, "pixels": pixels})  # the only pass that moves BatchNorm statistics
        with frozen_batchnorm_stats(model):
            grad = None
            if self.cfg.eps > 0:
                (grad,) = torch.autograd.grad(clean.loss, pixels, retain_graph=True)
            adv = self.inner(model, {**batch, "pixels": self.perturbed(model, batch, grad)})
        w = self.cfg.weight
        loss = (clean.loss + w * adv.loss) / (1 + w)
        metrics = {**clean.metrics, **{f"adv_{k}": v for k, v in adv.metrics.items()}}
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=clean.weight)


def image_adversarial_objective(inner: Objective, cfg: ImageAdversarialConfig, mean: list[float],
                                std: list[float]) -> Objective:
    """``inner`` wrapped for adversarial training, or ``inner`` itself when ``cfg.method`` is none."""
    return ImageAdversarialObjective(inner, cfg, mean, std) if cfg.active else inner
