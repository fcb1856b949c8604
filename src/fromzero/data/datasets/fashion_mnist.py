"""Fashion-MNIST: 70 000 grayscale 28x28 pictures of clothing in 10 classes, read from its IDX files.

60 000 training and 10 000 test images, as published by Zalando Research (Xiao, Rasul and Vollgraf
2017, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms",
https://arxiv.org/abs/1708.07747). Debian ships the four gzip-compressed IDX files in the
``dataset-fashion-mnist`` package under ``/usr/share/datasets/fashion-mnist``; any folder holding the
same four files works (``data.path``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from fromzero.data.image_set import ImageSet
from fromzero.data.images import read_idx
from fromzero.errors import DataError

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
INSTALL = "apt-get install dataset-fashion-mnist"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find(root: Path, stem: str) -> Path:
    """``<stem>.gz`` or the uncompressed ``<stem>`` in ``root``; missing -> a DataError with the fix."""
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root / (stem + '.gz')}: Fashion-MNIST file not found; install it with `{INSTALL}`, or set "
                    "data.path to a folder holding the four IDX .gz files")


def _load_split(root: Path, split: str) -> ImageSet:
    image_path, label_path = (_find(root, stem) for stem in FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != torch.uint8 or images.dim() != 3:
        raise DataError(f"{image_path}: expected uint8 images (N, H, W), got {images.dtype} {tuple(images.shape)}; "
                        "point at the *-images-idx3-ubyte file")
    if labels.dtype != torch.uint8 or labels.shape != (images.shape[0],):
        raise DataError(f"{label_path}: expected {images.shape[0]} uint8 labels to match {image_path.name}, got "
                        f"{labels.dtype} {tuple(labels.shape)}; the two files are from different sets")
    return ImageSet(images.unsqueeze(1), list(CLASS_NAMES), labels.to(torch.int64), where=str(image_path))


def load_fashion_mnist(root: str | Path = DEFAULT_ROOT) -> tuple[ImageSet, ImageSet]:
    """(train, test): 60 000 and 10 000 uint8 (N, 1, 28, 28) images with labels 0..9 (:data:`CLASS_NAMES`)."""
    root = Path(root)
    return _load_split(root, "train"), _load_split(root, "test")
