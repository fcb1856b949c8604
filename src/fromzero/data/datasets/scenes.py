"""Composed scenes: Fashion-MNIST items pasted on a black canvas, with exact boxes and per-pixel masks.

Detection and segmentation need ground truth that is right to the pixel. Each scene is drawn from a
seeded generator:

    k ~ U{min_items .. max_items}                       items per scene
    s ~ U[min_scale, max_scale],  side = round(28 s)    each item resized (Pillow bilinear, antialiased)
    F = {p : item'(p) > threshold}                      its foreground pixels, the only ones pasted
    canvas[F + offset] = item'[F],  ids[F + offset] = j  later items are drawn over earlier ones

An item's box is the tight box of its *visible* foreground pixels, in xyxy pixels with the end
exclusive (``x2 = max x + 1``), and the mask holds ``class + 1`` exactly on those pixels, so
``mask > 0`` is exactly ``image > threshold``. A placement is redrawn (up to a fixed number of tries,
then the item is left out) when its box overlaps an earlier box by IoU > ``max_overlap`` or when it
would hide an earlier item below ``min_visible`` of its pixels, so no labelled item is mostly hidden.

Train and validation scenes paste items from disjoint parts of the Fashion-MNIST training set (a
seeded tenth is kept for validation); test scenes paste test-set items only. The idea follows the
synthetic "multi-MNIST" scenes used to test detectors (e.g. Eslami et al. 2016, "Attend, Infer,
Repeat", https://arxiv.org/abs/1603.08575).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from fromzero.config import field, require
from fromzero.data.image_set import ImageSet, ImageSplits
from fromzero.progress import progress

ITEM_SIDE = 28  # Fashion-MNIST items are 28x28
PLACEMENT_TRIES = 30  # redraws of one item before it is left out of the scene
VALIDATION_ITEMS = 0.1  # share of the training items kept for validation scenes


@dataclass(frozen=True)
class SceneConfig:
    """How composed scenes look and how many of each split there are."""

    canvas: int = field(64, help="side of the square canvas, in pixels")
    min_items: int = field(1, help="fewest items in a scene")
    max_items: int = field(4, help="most items in a scene (fewer when they do not fit)")
    min_scale: float = field(0.6, help="smallest item scale (28x28 items become round(28 * scale) pixels)")
    max_scale: float = field(1.2, help="largest item scale")
    max_overlap: float = field(0.1, help="largest IoU between the boxes of two items in one scene (0 = disjoint)")
    min_visible: float = field(0.5, help="an earlier item keeps at least this fraction of its pixels visible")
    threshold: int = field(10, help="an item's foreground is its pixels > threshold (0..254); only they are pasted")
    n_train: int = field(4000, help="training scenes")
    n_validation: int = field(500, help="validation scenes")
    n_test: int = field(1000, help="test scenes")

    def __post_init__(self) -> None:
        require(self.canvas >= 8, "canvas", f"must be at least 8, got {self.canvas}")
        require(self.min_items >= 1, "min_items", f"must be at least 1, got {self.min_items}")
        require(self.max_items >= self.min_items, "max_items",
                f"{self.max_items} is below min_items={self.min_items}")
        require(0.1 <= self.min_scale <= self.max_scale, "min_scale",
                f"must be in [0.1, max_scale={self.max_scale}], got {self.min_scale}")
        require(round(ITEM_SIDE * self.max_scale) <= self.canvas, "max_scale",
                f"{self.max_scale} makes items of {round(ITEM_SIDE * self.max_scale)} pixels, larger than the "
                f"{self.canvas}-pixel canvas; lower it or raise canvas")
        require(0.0 <= self.max_overlap < 1.0, "max_overlap", f"must be in [0, 1), got {self.max_overlap}")
        require(0.0 < self.min_visible <= 1.0, "min_visible", f"must be in (0, 1], got {self.min_visible}")
        require(0 <= self.threshold < 255, "threshold", f"must be in 0..254, got {self.threshold}")
        for name in ("n_train", "n_validation", "n_test"):
            require(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")


def resize_item(item: np.ndarray, side: int) -> np.ndarray:
    """One (H, W) uint8 item resized to (side, side) uint8: Pillow's bilinear filter, whose support widens
    when shrinking (antialiased), as ``data/images.py`` resizes files."""
    if side == item.shape[-1]:
        return item
    return np.asarray(Image.fromarray(item).resize((side, side), Image.Resampling.BILINEAR))


def _draw_item(pixels: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
               cfg: SceneConfig) -> tuple[np.ndarray, int] | None:
    """A random item of ``pixels`` (N, H, W), resized and cropped to the tight box of its foreground:
    (pixels (h, w), class); None when nothing is left above the threshold."""
    index = int(rng.integers(len(pixels)))
    side = max(1, round(ITEM_SIDE * float(rng.uniform(cfg.min_scale, cfg.max_scale))))
    patch = resize_item(pixels[index], side)  # (side, side)
    rows, cols = np.nonzero(patch > cfg.threshold)
    if len(rows) == 0:
        return None
    return patch[rows.min():rows.max() + 1, cols.min():cols.max() + 1], int(labels[index])


def _overlap(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> float:
    """The largest IoU of ``box`` with the placed boxes (0 with none). In numpy, not ``nn.boxes.box_iou``: this
    runs once per placement try on a handful of boxes, where torch's per-call cost (~0.6 ms) would dominate."""
    if not placed:
        return 0.0
    p, b = np.array(placed, np.float64), np.array(box, np.float64)  # (M, 4), (4,)
    w = np.clip(np.minimum(p[:, 2], b[2]) - np.maximum(p[:, 0], b[0]), 0, None)  # (M,)
    h = np.clip(np.minimum(p[:, 3], b[3]) - np.maximum(p[:, 1], b[1]), 0, None)
    inter = w * h
    union = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float((inter / union).max())


def _visible_enough(ids: np.ndarray, counts: list[int], min_visible: float) -> bool:
    """Every placed item (ids 1..n) still shows at least ``min_visible`` of its pasted pixels."""
    shown = np.bincount(ids.ravel(), minlength=len(counts) + 1)[1:len(counts) + 1]
    return all(s > 0 and s >= min_visible * c for s, c in zip(shown, counts, strict=True))


def _compose_one(pixels: np.ndarray, labels: np.ndarray, cfg: SceneConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list]:
    """One scene: the canvas (S, S) uint8, the instance ids (S, S) int (0 = background) and each item's class."""
    size = cfg.canvas
    canvas = np.zeros((size, size), np.uint8)
    ids = np.zeros((size, size), np.int64)
    placed: list[tuple[int, int, int, int]] = []  # boxes as pasted, before later items cover them
    counts: list[int] = []  # foreground pixels pasted per item
    classes: list[int] = []
    for _ in range(int(rng.integers(cfg.min_items, cfg.max_items + 1))):
        for _try in range(PLACEMENT_TRIES):
            drawn = _draw_item(pixels, labels, rng, cfg)
            if drawn is None:
                continue
            patch, label = drawn
            h, w = patch.shape
            y, x = int(rng.integers(size - h + 1)), int(rng.integers(size - w + 1))
            box = (x, y, x + w, y + h)
            if _overlap(box, placed) > cfg.max_overlap:
                continue
            fg = patch > cfg.threshold  # (h, w)
            new_ids = ids.copy()
            new_ids[y:y + h, x:x + w][fg] = len(placed) + 1
            if not _visible_enough(new_ids, counts, cfg.min_visible):
                continue
            ids = new_ids
            canvas[y:y + h, x:x + w][fg] = patch[fg]
            placed.append(box)
            counts.append(int(fg.sum()))
            classes.append(label)
            break
    return canvas, ids, classes


def _targets(ids: np.ndarray, classes: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes (M, 4) of each item's visible pixels (end exclusive), their classes (M,), the mask (S, S)."""
    boxes = []
    for j in range(len(classes)):
        rows, cols = np.nonzero(ids == j + 1)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    lookup = np.array([0] + [c + 1 for c in classes], np.int64)  # instance id -> class + 1
    return (torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(classes, dtype=torch.int64),
            torch.from_numpy(lookup[ids]))


def compose_scenes(items: ImageSet, n: int, cfg: SceneConfig, seed: int, where: str = "scenes") -> ImageSet:
    """``n`` scenes (1 channel, canvas x canvas) pasted from the first channel of ``items`` (28x28; unlabelled
    items count as class 0); the same seed gives the same scenes. Returns boxes, box labels (the items'
    classes) and masks (class + 1 per pixel)."""
    rng = np.random.default_rng(seed)
    pixels = items.images[:, 0].numpy()  # (N, 28, 28)
    labels = items.labels.numpy() if items.labels is not None else np.zeros(len(items), np.int64)
    images = np.zeros((n, 1, cfg.canvas, cfg.canvas), np.uint8)  # (N, 1, S, S)
    masks = torch.zeros((n, cfg.canvas, cfg.canvas), dtype=torch.int64)  # (N, S, S)
    boxes, box_labels = [], []
    for i in progress(range(n), desc=f"composing {where}", unit="scene"):
        canvas, ids, classes = _compose_one(pixels, labels, cfg, rng)
        images[i, 0] = canvas
        b, lab, masks[i] = _targets(ids, classes)
        boxes.append(b)
        box_labels.append(lab)
    return ImageSet(torch.from_numpy(images), list(items.class_names), None, boxes, box_labels, masks, where)


def load_scenes(cfg: SceneConfig, seed: int, fashion_root: str | None = None) -> ImageSplits:
    """Train / validation / test scenes from Fashion-MNIST (``fashion_root``: the IDX folder, null = the
    Debian package's). Validation scenes use a seeded tenth of the training items that train scenes never use."""
    from fromzero.data.datasets.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist

    train_items, test_items = load_fashion_mnist(fashion_root or DEFAULT_ROOT)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(train_items)))
    n_val = round(VALIDATION_ITEMS * len(train_items))
    val_items, fit_items = train_items.subset(order[:n_val]), train_items.subset(order[n_val:])
    # distinct seeds per split: 3 * seed + k never collides across seeds
    return ImageSplits(compose_scenes(fit_items, cfg.n_train, cfg, 3 * seed, "scenes train"),
                       compose_scenes(val_items, cfg.n_validation, cfg, 3 * seed + 1, "scenes validation"),
                       compose_scenes(test_items, cfg.n_test, cfg, 3 * seed + 2, "scenes test"))
