"""Unstructured pruning: zero the least important weights of the Transformer blocks' linear layers.

Which weights: every linear layer inside a Transformer block (attention ``qkv``/``proj``, cross-attention
``q``/``kv``/``proj``, the FFN's ``fc``/``gate``/``up``/``proj``; T5's encoder and decoder blocks alike).
Embeddings, norms, the LM head (often tied to the embedding), BERT's pooler and task heads are left dense:
they are small next to the blocks or shared, and pruning them hurts most. A sparsity s is over this
prunable set.

Scores (lower = pruned first):

    magnitude (Han et al. 2015, https://arxiv.org/abs/1506.02626):  S_ij = |W_ij|
    Wanda (Sun et al. 2023, https://arxiv.org/abs/2306.11695):       S_ij = |W_ij| * ||X_j||_2

where ||X_j||_2 is the L2 norm of input feature j over all calibration tokens (padding excluded): a small
weight on a feature with large activations still matters.

Scope (which weights compete):

    layer   each layer separately. Magnitude: the round(s * numel) lowest of the matrix. Wanda: per output
            row, the round(s * in_features) lowest of the row (the paper's per-output comparison group), so
            every row, hence every layer, has the same sparsity.
    global  one ranking over every prunable weight: the round(s * total) lowest scores are zeroed, so
            layers end with different sparsities. Meaningful for magnitude; for Wanda the raw scores of all
            layers are pooled the same way (scores of layers with larger activations then dominate; the
            paper found per-output groups best, which is ``layer``).

round(x) here is floor(x + 0.5). Pruned weights are set to exactly +0.0 and a boolean mask (True = kept)
is returned per layer, so a recovery fine-tune can keep them zero.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from fromzero.compress.layer_inputs import Forward, visit_inputs
from fromzero.errors import ConfigError

METHODS = ("magnitude", "wanda")
SCOPES = ("layer", "global")
# a module inside the i-th Transformer block of any stack (GPT/BERT ``blocks.i``, T5 ``encoder.blocks.i``)
_IN_BLOCK = re.compile(r"(^|\.)blocks\.\d+\.(attn|cross_attn|mlp)\.")


def pruned_count(fraction: float, n: int) -> int:
    """How many of ``n`` items a fraction removes: floor(fraction * n + 0.5)."""
    return int(math.floor(fraction * n + 0.5))


def prunable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The linear layers inside Transformer blocks, by module name (see the module docstring)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear) and _IN_BLOCK.search(name)}


def check_prune_options(sparsity: float, method: str, scope: str) -> None:
    """One-line ConfigErrors for options out of range, before any work."""
    if not 0.0 <= sparsity < 1.0 or sparsity != sparsity:
        raise ConfigError(f"--sparsity: must be in [0, 1), got {sparsity}")
    if method not in METHODS:
        raise ConfigError(f"--method: unknown pruning method {method!r}; choose one of {', '.join(METHODS)}")
    if scope not in SCOPES:
        raise ConfigError(f"--scope: unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")


def input_norms(model: nn.Module, names: list[str], batches: list[dict[str, torch.Tensor]],
                forward: Forward) -> dict[str, torch.Tensor]:
    """||X_j||_2 per input feature j of each named linear layer over the batches' real tokens: (in,)."""
    modules = {name: model.get_submodule(name) for name in names}
    sums = {name: torch.zeros(m.in_features, dtype=torch.float64) for name, m in modules.items()}

    def visit(name: str, x: torch.Tensor) -> None:  # x (N, in)
        sums[name] += x.double().pow(2).sum(0).cpu()

    visit_inputs(model, modules, batches, forward, visit, "wanda calibration")
    return {name: s.sqrt().float() for name, s in sums.items()}


def weight_scores(layers: dict[str, nn.Linear], method: str,
                  norms: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Importance of every weight, (out, in) per layer: |W| (magnitude) or |W| * ||X_j|| (wanda)."""
    scores = {}
    for name, layer in layers.items():
        w = layer.weight.detach().float().abs()  # (out, in)
        if method == "wanda":
            if norms is None or name not in norms:
                raise ValueError(f"wanda needs input norms for {name}")
            w = w * norms[name].to(w.device)[None, :]
        scores[name] = w
    return scores


def _keep_all_but_lowest(scores: torch.Tensor, k: int, dim: int | None) -> torch.Tensor:
    """A bool mask of ``scores``' shape, False at its k lowest entries (per row when dim=1, else overall)."""
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k == 0:
        return keep
    if dim is None:
        keep.view(-1)[scores.flatten().topk(k, largest=False).indices] = False
    else:
        keep.scatter_(dim, scores.topk(k, dim=dim, largest=False).indices, False)
    return keep


def layer_masks(scores: dict[str, torch.Tensor], sparsity: float, per_row: bool) -> dict[str, torch.Tensor]:
    """Each layer pruned to the sparsity: the lowest round(s * numel) of the matrix, or per_row the lowest
    round(s * in_features) of every output row."""
    masks = {}
    for name, s in scores.items():
        if per_row:
            masks[name] = _keep_all_but_lowest(s, pruned_count(sparsity, s.shape[1]), dim=1)
        else:
            masks[name] = _keep_all_but_lowest(s, pruned_count(sparsity, s.numel()), dim=None)
    return masks


def global_masks(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """One ranking over all layers' scores: the lowest round(s * total) are pruned."""
    names = list(scores)
    flat = torch.cat([scores[n].flatten().cpu() for n in names])  # (total,)
    keep = _keep_all_but_lowest(flat, pruned_count(sparsity, flat.numel()), dim=None)
    masks, start = {}, 0
    for n in names:
        size = scores[n].numel()
        masks[n] = keep[start:start + size].view_as(scores[n]).to(scores[n].device)
        start += size
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Set every weight whose mask is False to exactly +0.0 (``masked_fill``, so no -0.0 appears)."""
    for name, keep in masks.items():
        weight = model.get_submodule(name).weight
        weight.masked_fill_(~keep.to(weight.device), 0.0)


def prune_weights(model: nn.Module, sparsity: float, method: str = "magnitude", scope: str = "layer",
                  norms: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Prune ``model``'s block linears in place; returns the kept-masks by layer name.

    ``norms`` (from :func:`input_norms`) are required for ``method="wanda"``.
    """
    check_prune_options(sparsity, method, scope)
    layers = prunable_linears(model)
    if not layers:
        raise ConfigError("this model has no linear layers inside Transformer blocks to prune (a quantized "
                          "run? prune before quantizing)")
    scores = weight_scores(layers, method, norms)
    if scope == "global":
        masks = global_masks(scores, sparsity)
    else:
        masks = layer_masks(scores, sparsity, per_row=method == "wanda")
    apply_masks(model, masks)
    return masks
