"""Clean photographs for denoising, from scikit-image's bundled sample images (no download).

The split is fixed by photo, so the test photos are never seen in training:

    train       astronaut, coffee, rocket, brick, grass, gravel, moon, page, text,
                hubble_deep_field, immunohistochemistry, cell
    validation  chelsea, clock
    test        camera, coins

Colour photos become grayscale with scikit-image's ``rgb2gray`` (ITU-R BT.709 luma,
``Y = 0.2125 R + 0.7154 G + 0.0721 B``), stored as uint8. Training images are ``patch`` x ``patch``
crops on a grid of step ``stride`` whose origin is shifted by a seeded offset per photo; validation
and test images are the centre ``test_size`` x ``test_size`` crop of each held-out photo. Noise is
added later, per batch (``data/image_batches.py``).

The baseline the denoisers are compared with is wavelet shrinkage with the BayesShrink threshold
(Chang, Yu and Vetterli 2000, "Adaptive wavelet thresholding for image denoising and compression",
IEEE TIP 9(9)), as ``skimage.restoration.denoise_wavelet`` implements it, with the noise level
estimated from the finest diagonal sub-band (Donoho and Johnstone 1994).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import torch

from fromzero.config import field, require
from fromzero.data.image_set import ImageSet, ImageSplits
from fromzero.errors import DataError

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "brick", "grass", "gravel", "moon", "page", "text",
                "hubble_deep_field", "immunohistochemistry", "cell")
VALIDATION_PHOTOS = ("chelsea", "clock")
TEST_PHOTOS = ("camera", "coins")
MAX_TEST_SIZE = 300  # the smallest side of the held-out photos (chelsea and clock are 300 pixels high)
MAX_PATCH = 172  # the smallest side of the training photos (text is 172 pixels high)


@dataclass(frozen=True)
class PhotoConfig:
    """How the photos become training patches and held-out crops."""

    patch: int = field(48, help="side of the square training crops")
    stride: int | None = field(None, help="step of the training crop grid (null = patch: crops do not overlap)")
    test_size: int = field(256, help="side of the centre crop of each validation / test photo")

    def __post_init__(self) -> None:
        require(8 <= self.patch <= MAX_PATCH, "patch", f"must be in 8..{MAX_PATCH}, got {self.patch}")
        require(self.stride is None or self.stride > 0, "stride", f"must be positive or null, got {self.stride}")
        require(8 <= self.test_size <= MAX_TEST_SIZE, "test_size",
                f"must be in 8..{MAX_TEST_SIZE} (the smallest held-out photo), got {self.test_size}")


def read_photo(name: str) -> np.ndarray:
    """One scikit-image sample photo as grayscale uint8 (H, W)."""
    import skimage.data
    from skimage.color import rgb2gray

    image = getattr(skimage.data, name)()
    if image.ndim == 3:
        image = np.rint(rgb2gray(image[..., :3]) * 255.0).astype(np.uint8)
    return image


def grid_crops(image: np.ndarray, patch: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """Every ``patch`` x ``patch`` crop on a grid of step ``stride`` from a seeded origin: (n, patch, patch)."""
    h, w = image.shape
    y0 = int(rng.integers(min(stride, h - patch + 1)))
    x0 = int(rng.integers(min(stride, w - patch + 1)))
    return np.stack([image[y:y + patch, x:x + patch]
                     for y in range(y0, h - patch + 1, stride) for x in range(x0, w - patch + 1, stride)])


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` crop of (H, W)."""
    h, w = image.shape
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size]


def _image_set(crops: list[np.ndarray], where: str) -> ImageSet:
    return ImageSet(torch.from_numpy(np.stack(crops)[:, None].copy()), [], where=where)  # (N, 1, S, S)


def load_photos(patch: int = 48, test_size: int = 256, seed: int = 0, stride: int | None = None) -> ImageSplits:
    """Training patches from :data:`TRAIN_PHOTOS`; validation / test centre crops of the other photos."""
    cfg = PhotoConfig(patch, stride, test_size)  # validates
    rng = np.random.default_rng(seed)
    train = np.concatenate([grid_crops(read_photo(n), cfg.patch, cfg.stride or cfg.patch, rng) for n in TRAIN_PHOTOS])
    held_out = {split: [center_crop(read_photo(n), cfg.test_size) for n in names]
                for split, names in (("validation", VALIDATION_PHOTOS), ("test", TEST_PHOTOS))}
    return ImageSplits(_image_set(list(train), "photos train"), _image_set(held_out["validation"], "photos validation"),
                       _image_set(held_out["test"], "photos test"))


def wavelet_baseline(noisy: np.ndarray) -> np.ndarray:
    """Wavelet-shrinkage denoising (BayesShrink, soft thresholds, noise level estimated per image) of
    images in [0, 1]: (H, W) or any leading dims (..., H, W), each (H, W) plane on its own; clipped to [0, 1]."""
    from skimage.restoration import denoise_wavelet

    if importlib.util.find_spec("pywt") is None:
        raise DataError("the wavelet baseline needs PyWavelets, which scikit-image's denoise_wavelet uses; install it "
                        "with `pip install PyWavelets`")
    x = np.asarray(noisy, dtype=np.float64)
    planes = x.reshape(-1, *x.shape[-2:])  # (P, H, W)
    out = np.stack([denoise_wavelet(p, method="BayesShrink", mode="soft", rescale_sigma=True) for p in planes])
    return np.clip(out, 0.0, 1.0).reshape(x.shape)
