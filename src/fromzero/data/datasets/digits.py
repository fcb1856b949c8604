"""scikit-learn's handwritten digits: 1 797 grayscale 8x8 images of the digits 0..9.

The UCI "Optical Recognition of Handwritten Digits" test set as bundled with scikit-learn
(``sklearn.datasets.load_digits``; Alpaydin and Kaynak 1998): each pixel counts the set pixels of a
4x4 block of a 32x32 bitmap, 0..16. They are stored here as uint8 ``round(v * 255 / 16)`` so every
image source shares one pixel range. There is no official test split: a seeded, stratified one is
drawn (the same seed gives the same split).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split

from fromzero.data.image_set import ImageSet

CLASS_NAMES = [str(d) for d in range(10)]


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """(train, test) uint8 (N, 1, 8, 8) images with labels 0..9; ``test_fraction`` of each class held out."""
    bunch = sklearn_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels,
                                   random_state=seed)
    return tuple(ImageSet(torch.from_numpy(pixels[np.sort(idx)]), list(CLASS_NAMES),
                          torch.from_numpy(labels[np.sort(idx)]), where=f"scikit-learn digits ({name})")
                 for idx, name in ((train, "train"), (test, "test")))
