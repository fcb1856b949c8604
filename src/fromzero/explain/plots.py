"""The PNGs of explanations and attacks (matplotlib's Agg canvas: no display, no global backend).

attention heatmaps (one panel per head), Grad-CAM overlays, the top tokens per class of a global
explanation, and the accuracy-vs-epsilon curve of an attack. Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fromzero.atomic import write_with


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path


def attention_png(path: str | Path, weights: np.ndarray, tokens: Sequence[str], title: str) -> Path:
    """weights (H, T, T) of one layer -> one heatmap per head (rows: queries, columns: keys)."""
    heads, n = weights.shape[0], len(tokens)
    cols = min(4, heads)
    rows = -(-heads // cols)
    side = max(2.5, 0.22 * n + 1)
    fig = _figure(side * cols, side * rows + 0.4)
    for h in range(heads):
        ax = fig.add_subplot(rows, cols, h + 1)
        ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}", fontsize=9)
        labels = tokens if n <= 48 else []  # tick labels stop being readable beyond that
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def gradcam_png(path: str | Path, image: np.ndarray, cam: np.ndarray, title: str) -> Path:
    """image (H, W, C) uint8 and cam (H, W) in [0, 1] -> the image beside the CAM overlaid on it."""
    fig = _figure(6, 3.2)
    shown = image[..., 0] if image.shape[-1] == 1 else image
    for i, overlay in enumerate((False, True)):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        if overlay:
            ax.imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax.set_title("Grad-CAM" if overlay else "input", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def class_tokens_png(path: str | Path, per_class: dict[str, list[dict[str, Any]]], method: str) -> Path:
    """Global explanation: one horizontal bar chart of the top tokens' mean attribution per class."""
    classes = list(per_class)
    fig = _figure(4.0 * min(4, len(classes)), 3.2 * -(-len(classes) // 4))
    for i, name in enumerate(classes):
        ax = fig.add_subplot(-(-len(classes) // 4), min(4, len(classes)), i + 1)
        top = per_class[name][::-1]
        ax.barh(range(len(top)), [t["mean"] for t in top], color="tab:red")
        ax.set_yticks(range(len(top)), [t["token"] for t in top], fontsize=7)
        ax.set_title(name, fontsize=9)
    fig.suptitle(f"top tokens per class ({method}, mean attribution)", fontsize=10)
    return _save(fig, path)


def attack_curve_png(path: str | Path, eps: Sequence[float], accuracy: Sequence[float], method: str, unit: str) -> Path:
    """Accuracy against epsilon."""
    fig = _figure(5, 3.5)
    ax = fig.add_subplot()
    ax.plot(list(eps), list(accuracy), marker="o")
    ax.set(xlabel=f"epsilon ({unit})", ylabel="accuracy", title=f"accuracy under {method}", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    return _save(fig, path)
