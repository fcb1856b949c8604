"""Structured pruning: remove whole attention heads or FFN hidden units, so the tensors really shrink.

Importance of head h of an attention layer with output projection W_o (C, H*D):

    with calibration:  I_h = mean over real tokens t of || y_{t,h} W_o[:, h]^T ||_2
                       (y_{t,h}: head h's attention output, so I_h is the size of what the head adds to the
                       residual stream; Michel et al. 2019, https://arxiv.org/abs/1905.10650, score heads by
                       their effect on the output too)
    without:           I_h = ||W_o[:, h]||_F * ||W_v[h]||_F   (its value rows times its output columns)

Importance of hidden unit j of an FFN with output projection W_2 (C, hidden):

    with calibration:  I_j = mean_t |a_{t,j}| * ||W_2[:, j]||_2   (a: the activation fed to W_2)
    without:           I_j = prod over input layers ||W_in[j]||_2 * ||W_2[:, j]||_2

The round(amount * total) lowest-scoring heads (or units) are removed, per layer (``scope="layer"``: each
layer loses round(amount * its count)) or over the whole model (``scope="global"``: one ranking), always
keeping at least one per layer. Removal is :mod:`fromzero.nn.shrink`. Only plain multi-head attention:
under grouped-query attention a key/value head serves several query heads, so heads cannot be dropped alone.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from fromzero.compress.layer_inputs import Forward, visit_inputs
from fromzero.compress.prune import pruned_count
from fromzero.errors import ConfigError
from fromzero.nn.shrink import ffn_inputs, keep_heads, keep_neurons

TARGETS = ("heads", "neurons")
_IN_BLOCK = re.compile(r"(^|\.)blocks\.\d+\.(attn|cross_attn|mlp)$")


def attention_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Self- and cross-attention modules of the Transformer blocks, by name."""
    return {name: m for name, m in model.named_modules()
            if _IN_BLOCK.search(name) and hasattr(m, "n_head") and isinstance(getattr(m, "proj", None), nn.Linear)}


def ffn_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Feed-forward modules of the Transformer blocks (an ``fc`` or ``gate``/``up`` and a ``proj``), by name."""
    return {name: m for name, m in model.named_modules()
            if _IN_BLOCK.search(name) and ffn_inputs(m) and isinstance(getattr(m, "proj", None), nn.Linear)}


def check_structured(model: nn.Module, target: str, amount: float) -> None:
    """One-line ConfigErrors: an unknown target, an amount outside [0, 1), grouped-query attention."""
    if target not in TARGETS:
        raise ConfigError(f"--structured: unknown target {target!r}; choose heads or neurons")
    if not 0.0 <= amount < 1.0 or amount != amount:
        raise ConfigError(f"--sparsity: must be in [0, 1), got {amount}")
    layers = attention_layers(model) if target == "heads" else ffn_layers(model)
    if not layers:
        raise ConfigError(f"--structured {target}: this model has no {target} to remove in its Transformer blocks")
    for name, attn in layers.items():
        if target == "heads" and getattr(attn, "n_kv_head", attn.n_head) != attn.n_head:
            raise ConfigError(f"--structured heads: {name} uses grouped-query attention (n_kv_head="
                              f"{attn.n_kv_head} < n_head={attn.n_head}); heads cannot be removed alone: "
                              "use --structured neurons or unstructured pruning")


def _head_weight_scores(attn: nn.Module) -> torch.Tensor:
    n, hd = attn.n_head, attn.head_dim
    w_o = attn.proj.weight.detach().float().view(-1, n, hd)  # (C, H, D)
    values = attn.qkv.weight if hasattr(attn, "qkv") else attn.kv.weight  # v rows come last in both
    w_v = values.detach().float()[-n * hd:].view(n, hd, -1)  # (H, D, C_in)
    return w_o.pow(2).sum((0, 2)).sqrt() * w_v.pow(2).sum((1, 2)).sqrt()  # (H,)


def _neuron_weight_scores(mlp: nn.Module) -> torch.Tensor:
    score = mlp.proj.weight.detach().float().norm(dim=0)  # (hidden,)
    for name in ffn_inputs(mlp):
        score = score * getattr(mlp, name).weight.detach().float().norm(dim=1)
    return score


def importance(model: nn.Module, target: str, batches: list[dict[str, torch.Tensor]] | None = None,
               forward: Forward | None = None) -> dict[str, torch.Tensor]:
    """Score of every head (or hidden unit) by layer name: from calibration batches when given (with
    ``forward(model, batch)``), else from the weights (see the module docstring)."""
    layers = attention_layers(model) if target == "heads" else ffn_layers(model)
    if not batches:
        score = _head_weight_scores if target == "heads" else _neuron_weight_scores
        return {name: score(m) for name, m in layers.items()}
    if forward is None:
        raise ValueError("calibration batches need a forward function")
    projs = {name: m.proj for name, m in layers.items()}
    sums = {name: torch.zeros(p.in_features, dtype=torch.float64) if target == "neurons" else
            torch.zeros(layers[name].n_head, dtype=torch.float64) for name, p in projs.items()}
    counts = dict.fromkeys(projs, 0)

    def visit(name: str, y: torch.Tensor) -> None:  # y (N, H*D) or (N, hidden): what proj reads
        w = projs[name].weight.detach().float()  # (C, H*D) or (C, hidden)
        if target == "neurons":
            sums[name] += (y.abs().sum(0) * w.norm(dim=0)).double().cpu()
        else:
            n = layers[name].n_head
            contrib = torch.einsum("nhd,chd->nhc", y.view(len(y), n, -1), w.view(w.shape[0], n, -1))
            sums[name] += contrib.norm(dim=-1).sum(0).double().cpu()  # (H,)
        counts[name] += len(y)

    visit_inputs(model, projs, batches, forward, visit, f"{target} calibration")
    return {name: (s / max(counts[name], 1)).float() for name, s in sums.items()}


def select_kept(scores: dict[str, torch.Tensor], amount: float, scope: str) -> dict[str, torch.Tensor]:
    """Sorted indices to keep per layer after removing the lowest scores (at least one kept per layer)."""
    removed: dict[str, set[int]] = {name: set() for name in scores}
    if scope == "layer":
        for name, s in scores.items():
            k = min(pruned_count(amount, len(s)), len(s) - 1)
            removed[name] = set(s.topk(k, largest=False).indices.tolist()) if k else set()
    else:
        entries = [(float(v), name, i) for name, s in scores.items() for i, v in enumerate(s.tolist())]
        entries.sort(key=lambda e: e[0])  # stable: ties keep layer order
        budget = pruned_count(amount, len(entries))
        for _, name, i in entries:
            if budget == 0:
                break
            if len(removed[name]) < len(scores[name]) - 1:
                removed[name].add(i)
                budget -= 1
    return {name: torch.tensor(sorted(set(range(len(s))) - removed[name]), dtype=torch.long)
            for name, s in scores.items()}


def remove_structures(model: nn.Module, target: str, kept: dict[str, torch.Tensor]) -> dict[str, int]:
    """Shrink every layer that loses something; returns {layer name: units kept} for those layers."""
    layers = attention_layers(model) if target == "heads" else ffn_layers(model)
    record = {}
    for name, index in kept.items():
        module = layers[name]
        total = module.n_head if target == "heads" else module.proj.in_features
        if len(index) < total:
            (keep_heads if target == "heads" else keep_neurons)(module, index)
            record[name] = len(index)
    return record


def prune_structured(model: nn.Module, target: str, amount: float, scope: str = "layer",
                     batches: list[dict[str, torch.Tensor]] | None = None,
                     forward: Forward | None = None) -> dict[str, object]:
    """Score, select and remove heads or neurons in place; returns the compression step (``op`` first)."""
    check_structured(model, target, amount)
    if scope not in ("layer", "global"):
        raise ConfigError(f"--scope: unknown scope {scope!r}; choose layer or global")
    scores = importance(model, target, batches, forward)
    record = remove_structures(model, target, select_kept(scores, amount, scope))
    return {"op": "structured", "target": target, "amount": amount, "scope": scope,
            "importance": "activations" if batches else "weights", target: record}
