"""Explicit-rating regression for recommenders: (model, batch) -> MSE between predicted and observed ratings.

    L = (1/B) sum_b (r_hat(u_b, i_b) - r_b)^2  +  reg (1/B) sum_b ||theta_b||^2

``r_hat`` is ``model.predict_rating(batch["user"], batch["item"])`` (biased MF, the two-tower hybrid);
``theta_b`` are the embedding rows row b uses (``model.embedding_l2(user, items)``), so the L2 penalty is
the per-example weight decay of SGD-trained MF (Koren et al., 2009) rather than a decay on every row each step.
Batches come from ``data.recsys_batches.RatingBatches``: {"user" (B,), "item" (B,), "rating" (B,)}.
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.objectives.base import ObjectiveOutput


def embedding_penalty(model: nn.Module, user: torch.Tensor, items: torch.Tensor, reg: float) -> torch.Tensor:
    """reg * mean over rows of the squared norm of the embeddings each row uses (0 when reg is 0)."""
    if reg == 0:
        return torch.zeros((), device=user.device)
    if not hasattr(model, "embedding_l2"):
        raise ValueError(f"{type(model).__name__} has no embedding_l2(user, items); set reg to 0")
    return reg * model.embedding_l2(user, items).mean()


class RatingRegression:
    """MSE on ``model.predict_rating``, plus an optional L2 penalty ``reg`` on the used embeddings.

    Metrics: ``loss`` (with the penalty), ``mse`` and ``rmse`` of the batch's predictions. weight = ratings.
    """

    def __init__(self, reg: float = 0.0) -> None:
        if reg < 0:
            raise ValueError(f"reg must be >= 0, got {reg}")
        self.reg = reg

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        user, item = batch["user"], batch["item"]  # (B,), (B,)
        pred = model.predict_rating(user, item).float()  # (B,)
        mse = (pred - batch["rating"].float()).pow(2).mean()
        loss = mse + embedding_penalty(model, user, item[:, None], self.reg)
        metrics = {"loss": loss.detach(), "mse": mse.detach(), "rmse": mse.detach().sqrt()}
        return ObjectiveOutput(loss=loss, metrics=metrics, weight=int(user.shape[0]))
