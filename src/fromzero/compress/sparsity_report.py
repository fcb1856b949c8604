"""The per-layer sparsity of a model's prunable weights: a dict (saved as sparsity.json) and a text table.

For each linear layer inside a Transformer block (the set :func:`fromzero.compress.prune.prunable_linears`
prunes): its name, weight shape, number of weights exactly zero and their share; then totals over the set
and the model's parameter count (after structured pruning it is smaller, not sparser).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fromzero.compress.prune import prunable_linears


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def sparsity_report(model: nn.Module) -> dict[str, Any]:
    """{"layers": [{"name", "shape", "zeros", "numel", "sparsity"}...], "zeros", "numel", "sparsity",
    "parameters"} over the model's prunable linear layers."""
    layers = []
    for name, linear in prunable_linears(model).items():
        w = linear.weight.detach()
        zeros, numel = int((w == 0).sum()), w.numel()
        layers.append({"name": name, "shape": list(w.shape), "zeros": zeros, "numel": numel,
                       "sparsity": zeros / numel if numel else 0.0})
    zeros, numel = sum(r["zeros"] for r in layers), sum(r["numel"] for r in layers)
    return {"layers": layers, "zeros": zeros, "numel": numel, "sparsity": zeros / numel if numel else 0.0,
            "parameters": count_parameters(model)}


def format_report(report: dict[str, Any]) -> str:
    """The report as a fixed-width table, one row per layer plus a total row."""
    rows = [(r["name"], "x".join(map(str, r["shape"])), f"{r['zeros']:,}", f"{100 * r['sparsity']:.2f}%")
            for r in report["layers"]]
    rows.append(("total (prunable)", f"{report['numel']:,} weights", f"{report['zeros']:,}",
                 f"{100 * report['sparsity']:.2f}%"))
    header = ("layer", "shape", "zeros", "sparsity")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    lines = ["  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"parameters: {report['parameters']:,}")
    return "\n".join(lines)
