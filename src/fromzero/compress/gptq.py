"""GPTQ: quantize a linear layer's weights column by column, feeding each column's rounding error forward.

Round-to-nearest (RTN) rounds every weight on its own. GPTQ (Frantar et al. 2022, "GPTQ: Accurate
Post-Training Quantization for Generative Pre-trained Transformers", https://arxiv.org/abs/2210.17323,
after Optimal Brain Quantization) minimises the layer's output error on calibration inputs X (N, in),

    || X W^T - X Q^T ||_F^2 ,      whose Hessian in each weight row is  H = 2 X^T X / N   (in, in),

by quantizing the columns j = 0..in-1 in order and spreading each column's error over the columns not yet
quantized, with the inverse Hessian:

    q_j    = quant(w_j)                                   w_j: column j (out,) after earlier updates
    e_j    = (w_j - q_j) / [H^-1]_jj
    w_k   -= e_j [H^-1]_jk          for k > j

``H^-1`` here is the upper Cholesky factor of the inverse of the dampened ``H + 0.01 mean(diag H) I``
(the paper's numerically stable form; inputs that are always zero get H_jj = 1 and weight 0). Updates are
applied lazily in blocks of columns (the paper's "lazy batch" trick: exact, just faster). With group-wise
scales, a group's scale s = max |w| / q_max is computed when the group is reached, from its columns as
they are then (after the error of earlier groups was fed into them); blocks are one group wide so the
group's columns are up to date. Per-channel scales come from the original weights. With H a multiple of
the identity no error crosses columns and GPTQ is exactly RTN.

Here H comes from the *float* model's inputs on the calibration batches, one pass for every layer (the
paper feeds each layer the outputs of the already-quantized layers before it; one float pass is simpler and
costs one forward per batch instead of one per layer).
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.compress.layer_inputs import Forward, visit_inputs
from fromzero.nn.quantized_linear import symmetric_scales

DAMP = 0.01  # fraction of mean(diag H) added to the diagonal, as in the paper's code
BLOCK = 128  # columns per lazy-update block when scales are per channel


class HessianAccumulator:
    """Running H = 2 X^T X / N (float64) over the rows of every input a layer sees."""

    def __init__(self, in_features: int) -> None:
        self.h = torch.zeros(in_features, in_features, dtype=torch.float64)
        self.rows = 0

    def add(self, x: torch.Tensor) -> None:
        """x (N, in): more calibration rows."""
        x = x.reshape(-1, x.shape[-1]).to(torch.float64)
        total = self.rows + x.shape[0]
        if total == 0:
            return
        self.h *= self.rows / total
        self.h += (2.0 / total) * x.T @ x
        self.rows = total


def collect_hessians(model: nn.Module, modules: dict[str, nn.Module], batches: list[dict[str, torch.Tensor]],
                     forward: Forward) -> dict[str, torch.Tensor]:
    """H (in, in) for each listed linear layer, from its inputs (real tokens) on ``batches``."""
    acc = {name: HessianAccumulator(m.in_features) for name, m in modules.items()}
    visit_inputs(model, modules, batches, forward, lambda name, x: acc[name].add(x), what="gptq calibration")
    return {name: a.h for name, a in acc.items()}


def _inverse_hessian_factor(hessian: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of (H + damp * mean(diag H) I)^-1 (in, in), float64."""
    h = hessian.to(torch.float64).clone()
    idx = torch.arange(h.shape[0])
    h[idx, idx] += damp * torch.mean(torch.diag(h))
    inv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(inv, upper=True)


def _quantize_column(w: torch.Tensor, s: torch.Tensor, q_max: int) -> torch.Tensor:
    return torch.clamp(torch.round(w / s), -q_max, q_max)


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, q_max: int, group_size: int | None,
                  damp: float = DAMP) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (out, in), H (in, in) -> (integers int8 (out, in) in [-q_max, q_max], scales (out,) or
    (out, in / group_size)) chosen by GPTQ; ``scales * integers`` approximates ``weight``."""
    out_features, in_features = weight.shape
    w = weight.detach().float().clone()  # float32 like the paper's code; the Cholesky factor in float64
    h = hessian.to(torch.float64).clone()
    dead = torch.diag(h) == 0  # inputs that are always zero: any weight works; quantize a zero
    h[dead, dead] = 1.0
    scales = symmetric_scales(w, q_max, None) if group_size is None \
        else torch.zeros(out_features, in_features // group_size)
    w[:, dead] = 0.0
    hinv = _inverse_hessian_factor(h, damp).float()
    q = torch.zeros_like(w)
    block = group_size or BLOCK
    for i1 in range(0, in_features, block):
        i2 = min(i1 + block, in_features)
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]  # (out, b), (b, b)
        err1 = torch.zeros_like(w1)
        if group_size is None:
            s = scales
        else:  # the group starts here: its scale from its columns as they are now
            s = symmetric_scales(w1, q_max, None)
            scales[:, i1 // group_size] = s
        for i in range(i2 - i1):
            col = w1[:, i]
            qcol = _quantize_column(col, s, q_max)
            q[:, i1 + i] = qcol
            err = (col - qcol * s) / hinv1[i, i]
            w1[:, i:] -= err[:, None] * hinv1[i, i:][None, :]
            err1[:, i] = err
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]  # the block's error, fed to every later column at once
    return q.to(torch.int8), scales.to(weight.dtype)
