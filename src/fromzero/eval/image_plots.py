"""Figures for image tasks: confusion matrix, prediction grid, boxes, mask overlays, denoising triplets.

Each function draws on matplotlib's Agg canvas directly (no display, no global pyplot backend), writes
its PNG atomically (``fromzero.atomic.write_with``: a temp file renamed into place, so a crash never
leaves half a PNG) and returns the path written. Images are uint8 (N, C, H, W) as stored (C = 1 or 3),
except the denoising triplets, which are floats in [0, 1]; tensors or numpy arrays. Boxes are xyxy in
pixel-edge coordinates (a box (0, 0, W, H) covers the whole image). Every class index keeps one colour
(``class_colour``) in every figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fromzero.atomic import write_with
from fromzero.errors import DataError
from fromzero.eval.image_metrics import image_psnr
from fromzero.eval.metrics import confusion, plot_confusion_matrix

RIGHT, WRONG = "#1a7f37", "#cf222e"  # title colours of correct / wrong predictions
IGNORE, IGNORE_RGBA = 255, (0.0, 0.0, 0.0, 0.6)  # mask pixels marked 255 (ignored) are drawn dark


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def class_colour(k: int) -> tuple[float, float, float, float]:
    """The fixed RGBA colour of class index ``k``: tab10's ten distinct colours, then tab20's light shades,
    cycling past 20 classes."""
    from matplotlib import colormaps

    k %= 20
    return colormaps["tab10"](k) if k < 10 else colormaps["tab20"](2 * (k - 10) + 1)


def _figure(rows: int, cols: int, cell: float = 1.8) -> tuple[Any, np.ndarray]:
    """A figure with a (rows, cols) array of axes, on the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cell * cols, cell * rows + 0.3))
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path


def _legend(fig: Any, handles: list) -> None:
    """A class legend along the bottom (in the figure's spare strip), the panels laid out above it."""
    rows = math.ceil(len(handles) / 6)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, min(0.5, 0.22 * rows / fig.get_figheight()), 1, 1))


def _show(ax: Any, image: np.ndarray, peak: float = 255.0) -> None:
    """Draw one image (C, H, W) with pixel edges at integer coordinates (so xyxy boxes line up)."""
    c, h, w = image.shape
    if c not in (1, 3):
        raise DataError(f"image plots: images must have 1 or 3 channels, got {c}")
    shown = image[0] if c == 1 else np.transpose(image, (1, 2, 0))  # (H, W) or (H, W, 3)
    if peak == 1.0:
        shown = np.clip(shown, 0.0, 1.0)
    ax.imshow(shown, cmap="gray" if c == 1 else None, vmin=0, vmax=peak, extent=(0, w, h, 0),
              interpolation="nearest")


def _count(n: int, max_images: int, *others: Sequence) -> int:
    for other in others:
        if len(other) != n:
            raise DataError(f"image plots: {n} images but {len(other)} targets or predictions; pass one per image")
    if n == 0:
        raise DataError("image plots: no images to draw")
    return min(n, max_images)


# ------------------------------------------------------------------------------------------ classification


def confusion_matrix_png(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str],
                         path: str | Path, normalize: bool = True) -> Path:
    """Confusion matrix over every class (rows true, columns predicted); ``normalize`` shows row shares."""
    matrix = confusion(list(_np(y_true).tolist()), list(_np(y_pred).tolist()), labels=range(len(class_names)))
    return plot_confusion_matrix(matrix, list(class_names), path, normalize=normalize)


def prediction_grid_png(images: Any, true_labels: Sequence[int], pred_labels: Sequence[int],
                        class_names: Sequence[str], path: str | Path, max_images: int = 32) -> Path:
    """The first ``max_images`` images titled with the prediction: green when right, red (with the truth)
    when wrong, black where the true label is negative (unknown, e.g. a new image)."""
    images, true, pred = _np(images), _np(true_labels).reshape(-1), _np(pred_labels).reshape(-1)
    n = _count(len(images), max_images, true, pred)
    k = len(class_names)
    if (true[:n] >= k).any() or (pred[:n] < 0).any() or (pred[:n] >= k).any():
        raise DataError(f"prediction grid: a label is outside the {k} classes; pass indices into class_names")
    cols = min(8, n)
    fig, axes = _figure(math.ceil(n / cols), cols, cell=1.5)
    for i in range(n):
        ax = axes.flat[i]
        _show(ax, images[i])
        p = class_names[int(pred[i])]
        if true[i] < 0:
            ax.set_title(p, color="black", fontsize=7)
        else:
            t = class_names[int(true[i])]
            ax.set_title(p if t == p else f"{p}\n(true: {t})", color=RIGHT if t == p else WRONG, fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- detection


def _draw_boxes(ax: Any, boxes: Any, labels: Any, class_names: Sequence[str], scores: Any = None,
                dashed: bool = False) -> None:
    """Boxes (M, 4) xyxy in their class colours; solid with a label (+ score) tag, or dashed (truth)."""
    from matplotlib.patches import Rectangle

    boxes, labels = _np(boxes).reshape(-1, 4), _np(labels).reshape(-1)
    scores = None if scores is None else _np(scores).reshape(-1)
    for j, (x1, y1, x2, y2) in enumerate(boxes):
        colour = class_colour(int(labels[j]))
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                               linestyle="--" if dashed else "-", linewidth=1.0 if dashed else 1.5))
        if not dashed:
            text = class_names[int(labels[j])] + ("" if scores is None else f" {scores[j]:.2f}")
            ax.text(x1, y1, text, fontsize=6, color="white", va="bottom", clip_on=True,
                    bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.5, "alpha": 0.8})


def _draw_detection(ax: Any, image: np.ndarray, pred: dict | None, target: dict | None,
                    class_names: Sequence[str]) -> None:
    _show(ax, image)
    if target is not None:
        _draw_boxes(ax, target["boxes"], target["labels"], class_names, dashed=True)
    if pred is not None:
        _draw_boxes(ax, pred["boxes"], pred["labels"], class_names, pred.get("scores"))
    ax.set_xlim(0, image.shape[2])
    ax.set_ylim(image.shape[1], 0)


def boxes_png(image: Any, boxes: Any, labels: Any, class_names: Sequence[str], path: str | Path,
              scores: Any = None, true_boxes: Any = None, true_labels: Any = None) -> Path:
    """One image (C, H, W) with predicted boxes (solid, label + score) and ground truth (dashed).

    ``true_labels`` colours the truth by class; without it the truth is drawn in the colour of class 0.
    """
    image = _np(image)
    fig, axes = _figure(1, 1, cell=max(3.0, image.shape[2] / 40))
    target = None
    if true_boxes is not None:
        true_boxes = _np(true_boxes).reshape(-1, 4)
        target = {"boxes": true_boxes,
                  "labels": np.zeros(len(true_boxes), np.int64) if true_labels is None else true_labels}
    _draw_detection(axes[0, 0], image, {"boxes": boxes, "labels": labels, "scores": scores}, target, class_names)
    fig.tight_layout()
    return _save(fig, path)


def boxes_grid_png(images: Any, preds: Sequence[dict], targets: Sequence[dict] | None, class_names: Sequence[str],
                   path: str | Path, max_images: int = 16) -> Path:
    """A grid of the first ``max_images`` images with their predicted boxes (dicts of boxes / scores / labels,
    as a detector's ``detect`` returns) and ground truth (dicts of boxes / labels, dashed), with a class legend."""
    from matplotlib.patches import Patch

    images = _np(images)
    n = _count(len(images), max_images, preds, *([targets] if targets is not None else []))
    cols = min(4, n)
    fig, axes = _figure(math.ceil(n / cols), cols, cell=2.4)
    for i in range(n):
        _draw_detection(axes.flat[i], images[i], preds[i], None if targets is None else targets[i], class_names)
    _legend(fig, [Patch(facecolor=class_colour(k), label=name) for k, name in enumerate(class_names)])
    return _save(fig, path)


# ------------------------------------------------------------------------------------------- segmentation


def mask_rgba(mask: np.ndarray, ignore_index: int = IGNORE) -> np.ndarray:
    """(H, W) class mask -> (H, W, 4) overlay: class k > 0 in its colour at alpha 0.55, background clear,
    ignored pixels dark."""
    palette = np.array([class_colour(k) for k in range(int(mask[mask != ignore_index].max(initial=0)) + 1)])
    palette[:, 3] = 0.55
    palette[0] = (0.0, 0.0, 0.0, 0.0)
    out = np.zeros((*mask.shape, 4))
    keep = mask != ignore_index
    out[keep] = palette[mask[keep]]
    out[~keep] = IGNORE_RGBA
    return out


def mask_overlay_png(images: Any, pred_masks: Any, true_masks: Any | None, class_names: Sequence[str],
                     path: str | Path, max_images: int = 8) -> Path:
    """Rows of image | truth overlay | prediction overlay for the first ``max_images`` images, with a legend
    (``true_masks=None``, e.g. a new image: image | prediction).

    Masks (N, H, W): value k is ``class_names[k]`` (0 = background, left clear; 255 = ignored, dark).
    """
    from matplotlib.patches import Patch

    images, pred = _np(images), _np(pred_masks).astype(np.int64)
    true = None if true_masks is None else _np(true_masks).astype(np.int64)
    n = _count(len(images), max_images, pred, *([] if true is None else [true]))
    fig, axes = _figure(n, 2 if true is None else 3, cell=2.0)
    for i in range(n):
        panels = [("image", None), ("prediction", pred[i])]
        if true is not None:
            panels.insert(1, ("truth", true[i]))
        for col, (title, mask) in enumerate(panels):
            ax = axes[i, col]
            # overlays sit on the grey version of the image, so the class colours read true
            _show(ax, images[i] if mask is None else images[i].mean(0, keepdims=True))
            if mask is not None:
                h, w = mask.shape
                ax.imshow(mask_rgba(mask), extent=(0, w, h, 0), interpolation="nearest")
            if i == 0:
                ax.set_title(title, fontsize=9)
    handles = [Patch(facecolor=class_colour(k), label=name) for k, name in enumerate(class_names) if k > 0]
    if (pred[:n] == IGNORE).any() or (true is not None and (true[:n] == IGNORE).any()):
        handles.append(Patch(facecolor=IGNORE_RGBA, label="ignored"))
    _legend(fig, handles)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- denoising


def denoise_triplets_png(noisy: Any, clean: Any | None, denoised: Any, path: str | Path, max_images: int = 4,
                         names: tuple[str, str, str] = ("noisy", "denoised", "clean")) -> Path:
    """Rows of noisy | denoised | clean (floats in [0, 1], (N, C, H, W)), PSNR against the clean image in the
    titles; ``clean=None`` (no reference, e.g. a user's photo) draws noisy | denoised without PSNR. ``names``
    titles the three columns (MAE draws masked | reconstruction | original)."""
    noisy, denoised = _np(noisy).astype(np.float64), _np(denoised).astype(np.float64)
    clean = None if clean is None else _np(clean).astype(np.float64)
    n = _count(len(noisy), max_images, denoised, *([] if clean is None else [clean]))
    fig, axes = _figure(n, 2 if clean is None else 3, cell=2.0)
    for i in range(n):
        if clean is None:
            panels = [(names[0], noisy[i]), (names[1], denoised[i])]
        else:
            panels = [(f"{names[0]} {image_psnr(clean[i], noisy[i]):.2f} dB", noisy[i]),
                      (f"{names[1]} {image_psnr(clean[i], denoised[i]):.2f} dB", denoised[i]), (names[2], clean[i])]
        for col, (title, image) in enumerate(panels):
            _show(axes[i, col], image, peak=1.0)
            axes[i, col].set_title(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
