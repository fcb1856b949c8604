"""Images held in memory with their targets: the unit every image dataset loads into.

One ``ImageSet`` is one split: N images of one size and channel count (uint8,
as stored), the class names, and whichever targets the task has: a class per
image (classification), boxes with a class each (detection), a class per
pixel (segmentation; 0 is background, k + 1 is class k). Denoising needs only
the clean images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fromzero.errors import DataError


@dataclass
class ImageSet:
    """N images (uint8, (N, C, H, W)) and their targets; ``where`` names the source in errors."""

    images: torch.Tensor  # (N, C, H, W) uint8
    class_names: list[str]
    labels: torch.Tensor | None = None  # (N,) int64 in [0, K)
    boxes: list[torch.Tensor] | None = None  # per image (M_i, 4) float32 xyxy in pixels
    box_labels: list[torch.Tensor] | None = None  # per image (M_i,) int64 in [0, K)
    masks: torch.Tensor | None = None  # (N, H, W) int64: 0 background, k + 1 class k
    where: str = "images"

    def __post_init__(self) -> None:
        self.check()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def mask_classes(self) -> list[str]:
        """Segmentation classes: background first, then the object classes."""
        return ["background", *self.class_names]

    def subset(self, index: torch.Tensor) -> ImageSet:
        """The images at ``index`` (a long tensor), with their targets."""
        idx = [int(i) for i in index]
        return ImageSet(
            self.images[index], list(self.class_names),
            None if self.labels is None else self.labels[index],
            None if self.boxes is None else [self.boxes[i] for i in idx],
            None if self.box_labels is None else [self.box_labels[i] for i in idx],
            None if self.masks is None else self.masks[index], self.where)

    def check(self) -> None:
        """Shapes, dtypes and ranges agree; a DataError names the source and the first bad image."""
        x, k, n = self.images, len(self.class_names), len(self)
        if x.dim() != 4 or x.dtype != torch.uint8:
            raise DataError(f"{self.where}: images must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        if n == 0:
            raise DataError(f"{self.where}: no images; point the recipe at a folder or file that has some")
        if self.labels is not None:
            if self.labels.shape != (n,):
                raise DataError(f"{self.where}: {tuple(self.labels.shape)} labels for {n} images")
            bad = ((self.labels < 0) | (self.labels >= k)).nonzero()
            if len(bad):
                i = int(bad[0])
                raise DataError(f"{self.where}: image {i} has label {int(self.labels[i])}, outside the {k} classes")
        if self.boxes is not None:
            self._check_boxes()
        if self.masks is not None and self.masks.shape != (n, *self.size):
            raise DataError(f"{self.where}: masks {tuple(self.masks.shape)} do not match images {tuple(x.shape)}")

    def _check_boxes(self) -> None:
        h, w = self.size
        labels = self.box_labels
        if labels is None or len(self.boxes) != len(self) or len(labels) != len(self):
            raise DataError(f"{self.where}: boxes and box labels must be given for each of the {len(self)} images")
        for i, (b, lab) in enumerate(zip(self.boxes, labels, strict=True)):
            if b.dim() != 2 or b.shape[1] != 4 or lab.shape != (b.shape[0],):
                raise DataError(f"{self.where}: image {i}: boxes must be (M, 4) with M labels")
            bad = ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]) | (b[:, :2] < 0).any(1) | (b[:, 2] > w) | (b[:, 3] > h))
            if bad.any():
                j = int(bad.nonzero()[0])
                raise DataError(f"{self.where}: image {i} box {j} {[round(float(v), 1) for v in b[j]]} is not inside "
                                f"the {w}x{h} image with x1 < x2 and y1 < y2; fix or drop that box")
            if len(lab) and (int(lab.min()) < 0 or int(lab.max()) >= len(self.class_names)):
                raise DataError(f"{self.where}: image {i} has a box label outside the {len(self.class_names)} classes")


@dataclass
class ImageSplits:
    """The three splits a vision run uses: train (optimised), validation (selection), test (reported)."""

    train: ImageSet
    validation: ImageSet
    test: ImageSet
