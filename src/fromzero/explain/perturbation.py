"""FGSM and PGD: worst-case perturbations inside an L-infinity ball, for any differentiable loss.

For a loss L(x) of the true labels (cross-entropy), radius eps and a mask m of the coordinates that may move:

    FGSM (Goodfellow et al., 2015)   x_adv = clip(x + eps * m * sign(grad_x L(x)))
    PGD  (Madry et al., 2018)        x_0 = x;  x_{t+1} = clip(P_eps(x_t + alpha * m * sign(grad L(x_t))))
                                     P_eps projects onto |x' - x|_inf <= eps; alpha = 2.5 eps / steps

``clip`` keeps the input valid (pixels in [0, 1]; identity for embeddings). PGD starts at x itself (no random
start), so a run is deterministic and eps = 0 returns x exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Loss = Callable[[torch.Tensor], torch.Tensor]  # perturbed input -> scalar loss (summed over the batch)
Clip = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _grad(loss: Loss, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(x), x)
    return grad


def fgsm(loss: Loss, x: torch.Tensor, eps: float, mask: torch.Tensor | None = None,
         clip: Clip = _identity) -> torch.Tensor:
    """One signed-gradient step of size ``eps`` (``mask`` broadcast over x: 1 where x may move)."""
    if eps == 0:
        return x.detach().clone()
    step = eps * _grad(loss, x).sign()
    if mask is not None:
        step = step * mask
    return clip(x.detach() + step).detach()


def pgd(loss: Loss, x: torch.Tensor, eps: float, steps: int, mask: torch.Tensor | None = None,
        clip: Clip = _identity, alpha: float | None = None) -> torch.Tensor:
    """``steps`` signed-gradient steps of ``alpha`` (default 2.5 eps / steps), each projected back into the ball."""
    if eps == 0 or steps < 1:
        return x.detach().clone()
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x0, adv = x.detach(), x.detach().clone()
    for _ in range(steps):
        step = alpha * _grad(loss, adv).sign()
        if mask is not None:
            step = step * mask
        adv = clip(torch.max(torch.min(adv + step, x0 + eps), x0 - eps)).detach()
    return adv


def perturb(method: str, loss: Loss, x: torch.Tensor, eps: float, steps: int = 10, mask: torch.Tensor | None = None,
            clip: Clip = _identity) -> torch.Tensor:
    """``fgsm`` or ``pgd`` by name."""
    if method == "fgsm":
        return fgsm(loss, x, eps, mask, clip)
    if method == "pgd":
        return pgd(loss, x, eps, steps, mask, clip)
    raise ValueError(f"unknown perturbation {method!r}; choose fgsm or pgd")
