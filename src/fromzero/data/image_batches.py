"""Batches of images for every vision task, as dicts of tensors the Trainer's BatchSource hands out.

Pixels are normalised per channel, ``(x / 255 - mean[c]) / std[c]``, with the
mean and std of the train split (:func:`channel_stats`); denoising batches
stay in [0, 1]. Keys per task:

    image_classification  pixels (B, C, H, W), labels (B,) [+ labels_b (B,), mix_lambda (B,) with mixup/cutmix]
    detection             pixels, boxes (B, M, 4) xyxy (zero rows pad), box_labels (B, M) (-1 pads), M >= 1
    segmentation          pixels, masks (B, H, W) int64 (0 background, k + 1 class k, 255 ignore)
    denoising             pixels = noisy (B, C, H, W) in [0, 1], target = clean in [0, 1]
    mae                   pixels, mask_noise (B, L) uniform [0, 1), L = (H / patch) (W / patch)

Training (``shuffle=True``) reads an endless stream of epoch permutations:
stream position q is image ``perm_{q // N}[q % N]``, where ``perm_e`` is drawn
from (seed, e), and micro-batch ``g = step * grad_accum + micro`` holds
positions ``[g B, (g + 1) B)``. So every image is seen exactly once per epoch
and every batch is full. Augmentation, noise and mask noise draw from a
generator seeded by (seed, step, micro): ``batch(step, micro)`` is a pure
function of its arguments, which is what makes resuming exact.

Evaluation (``shuffle=False``): batch i holds images ``[i B, (i + 1) B)`` (the
last one may be short; i wraps around past the end), never augmented; the
denoising noise and the MAE mask noise of image n are seeded by n alone, so
every evaluation (and every run) scores the same noisy inputs.

Noise (0-255 scale sigma, as in the denoising literature, e.g. Zhang et al.,
2017, DnCNN): gaussian ``y = x + sigma / 255 * n``, ``n ~ N(0, 1)``; poisson
``y = Poisson(peak x) / peak`` (shot noise, ``peak`` photons at white);
mixed: poisson then gaussian (the Poisson-Gaussian model of Foi et al., 2008).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from fromzero.config import field, require
from fromzero.data.image_augment import AugmentConfig, augment, mix_batch
from fromzero.data.image_set import ImageSet
from fromzero.data.loader import batch_seed, splitmix64
from fromzero.errors import ConfigError, DataError

TASKS = ("image_classification", "detection", "segmentation", "denoising", "mae")
_PERM_TAG = 0x5045524D  # keeps the permutation seeds apart from the batch seeds
_EVAL_SEED = 0x4556414C  # evaluation noise depends on the image index only


@dataclass(frozen=True)
class NoiseConfig:
    """Synthetic noise for denoising: the model sees ``add_noise(clean)`` and must return ``clean``."""

    kind: Literal["gaussian", "poisson", "mixed"] = field("gaussian", help="gaussian | poisson | mixed (both)")
    sigma: float = field(25.0, help="Gaussian noise std on the 0-255 scale")
    peak: float = field(30.0, help="Poisson: expected photon count of a white pixel (lower = noisier)")
    clip: bool = field(True, help="clip noisy images to [0, 1]")

    def __post_init__(self) -> None:
        require(self.sigma >= 0, "sigma", f"must be >= 0, got {self.sigma}")
        require(self.peak > 0, "peak", f"must be positive, got {self.peak}")


def add_noise(clean: torch.Tensor, cfg: NoiseConfig, generator: torch.Generator) -> torch.Tensor:
    """``clean`` in [0, 1] -> noisy image of the same shape, drawn from ``generator``."""
    x = clean
    if cfg.kind in ("poisson", "mixed"):
        x = torch.poisson(clean.clamp(min=0) * cfg.peak, generator=generator) / cfg.peak
    if cfg.kind in ("gaussian", "mixed"):
        x = x + (cfg.sigma / 255.0) * torch.randn(x.shape, generator=generator)
    return x.clamp(0, 1) if cfg.clip else x


def channel_stats(images: ImageSet, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of the pixels on the [0, 1] scale; a constant channel gets std 1."""
    c = images.channels
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for start in range(0, len(images), chunk):  # chunks keep float copies small
        x = images.images[start:start + chunk].to(torch.float64) / 255.0  # (n, C, H, W)
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    count = len(images) * images.size[0] * images.size[1]
    mean = total / count
    std = (squares / count - mean * mean).clamp(min=0).sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # a constant channel: nothing to scale
    return mean.tolist(), std.tolist()


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed & ((1 << 63) - 1))


class ImageBatches:
    """Deterministic batches of one ImageSet for one task (see the module docstring)."""

    def __init__(self, data: ImageSet, task: str, batch_size: int, *, seed: int = 0, shuffle: bool = False,
                 grad_accum: int = 1, augment: AugmentConfig | None = None, mean: list[float] | None = None,
                 std: list[float] | None = None, noise: NoiseConfig | None = None, patch: int | None = None,
                 crop: int | None = None) -> None:
        """``mean`` / ``std`` default to this set's own statistics (right for train; pass the train split's for
        the others). ``augment`` applies when ``shuffle`` (training) only. ``patch``: the MAE patch size;
        ``crop``: denoising trains on random ``crop`` x ``crop`` windows."""
        if task not in TASKS:
            raise ConfigError(f"task {task!r} is not an image task; choose one of {', '.join(TASKS)}")
        if batch_size < 1 or grad_accum < 1:
            raise ConfigError(f"batch_size and grad_accum must be >= 1, got {batch_size} and {grad_accum}")
        self.data, self.task, self.batch_size, self.seed = data, task, batch_size, seed
        self.shuffle, self.grad_accum, self.patch, self.crop = shuffle, grad_accum, patch, crop
        self.augment = augment if shuffle else None
        self.noise = noise or NoiseConfig()
        self._check_task()
        if mean is None or std is None:
            own_mean, own_std = channel_stats(data)
            mean, std = mean or own_mean, std or own_std
        if len(mean) != data.channels or len(std) != data.channels or min(std) <= 0:
            raise ConfigError(f"mean {list(mean)} and std {list(std)} need one value per channel ({data.channels}) "
                              "and std > 0")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self._perms: dict[int, torch.Tensor] = {}

    def _check_task(self) -> None:
        d, task, (h, w) = self.data, self.task, self.data.size
        needs = {"image_classification": ("labels", "class labels"), "detection": ("boxes", "boxes"),
                 "segmentation": ("masks", "segmentation masks")}
        if task in needs and getattr(d, needs[task][0]) is None:
            raise DataError(f"{d.where}: has no {needs[task][1]}, which task {task} needs; use a dataset with them "
                            "or another task")
        aug = self.augment
        if aug is not None and aug.mixes and task != "image_classification":
            raise ConfigError(f"augment.mixup_alpha / augment.cutmix_alpha apply to image_classification only; set "
                              f"them to 0 for task {task}")
        if aug is not None and aug.pad_mode == "reflect" and aug.crop_padding >= min(h, w):
            raise ConfigError(f"augment.crop_padding={aug.crop_padding} must be below the image side {min(h, w)} "
                              "with pad_mode reflect")
        if task == "mae" and (self.patch is None or self.patch < 1 or h % self.patch or w % self.patch):
            raise ConfigError(f"mae needs a patch size dividing the {w}x{h} images, got patch={self.patch}")
        if self.crop is not None and (task != "denoising" or not 1 <= self.crop <= min(h, w)):
            raise ConfigError(f"crop={self.crop}: training crops are for denoising and must be in [1, {min(h, w)}]")

    def __len__(self) -> int:
        """Batches in one pass over the data (the last evaluation batch may be short)."""
        return math.ceil(len(self.data) / self.batch_size)

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) >= 4:  # a batch spans at most a few epochs; keep memory bounded
                self._perms.pop(next(iter(self._perms)))
            gen = _generator(batch_seed(splitmix64(self.seed) ^ _PERM_TAG, epoch))
            self._perms[epoch] = torch.randperm(len(self.data), generator=gen)
        return self._perms[epoch]

    def indices(self, step: int, micro: int = 0) -> torch.Tensor:
        """Image indices (B,) of micro-batch (step, micro)."""
        g, n, b = step * self.grad_accum + micro, len(self.data), self.batch_size
        if not self.shuffle:
            i = g % len(self)
            return torch.arange(i * b, min((i + 1) * b, n))
        q = torch.arange(g * b, (g + 1) * b)  # stream positions
        epochs, within = q // n, q % n
        out = torch.empty(b, dtype=torch.long)
        for e in epochs.unique().tolist():
            sel = epochs == e
            out[sel] = self._perm(e)[within[sel]]
        return out

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """The batch for (step, micro): the same arguments always give the same tensors."""
        idx = self.indices(step, micro)
        gen = _generator(batch_seed(self.seed, step, micro))
        x = self.data.images[idx].float() / 255.0  # (B, C, H, W) in [0, 1]
        d = self.data
        boxes = [d.boxes[i] for i in idx.tolist()] if self.task == "detection" else None
        box_labels = [d.box_labels[i] for i in idx.tolist()] if self.task == "detection" else None
        masks = d.masks[idx] if self.task == "segmentation" else None
        if self.augment is not None:
            x, boxes, box_labels, masks = augment(x, self.augment, gen, boxes=boxes, box_labels=box_labels,
                                                  masks=masks)
        if self.task == "denoising":
            return self._denoising(x, idx, gen)
        out: dict[str, torch.Tensor] = {}
        if self.task == "image_classification":
            out["labels"] = d.labels[idx]
            if self.augment is not None and self.augment.mixes:  # mixing commutes with the affine normalisation
                x, out["labels_b"], out["mix_lambda"] = mix_batch(x, out["labels"], self.augment, gen)
        out["pixels"] = (x - self.mean) / self.std
        if self.task == "detection":
            out["boxes"], out["box_labels"] = _pad_boxes(boxes, box_labels)
        elif self.task == "segmentation":
            out["masks"] = masks
        elif self.task == "mae":
            h, w = d.size
            n_patches = (h // self.patch) * (w // self.patch)
            if self.shuffle:
                out["mask_noise"] = torch.rand(len(idx), n_patches, generator=gen)
            else:
                out["mask_noise"] = torch.stack([torch.rand(n_patches, generator=g) for g in _eval_generators(idx)])
        return out

    def _denoising(self, clean: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        if not self.shuffle:  # fixed noise per image
            gens = _eval_generators(idx)
            noisy = torch.stack([add_noise(c, self.noise, g) for c, g in zip(clean, gens, strict=True)])
            return {"pixels": noisy, "target": clean}
        if self.crop is not None:
            clean = _random_windows(clean, self.crop, gen)
        return {"pixels": add_noise(clean, self.noise, gen), "target": clean}


def _eval_generators(idx: torch.Tensor) -> list[torch.Generator]:
    """One generator per image, seeded by its index alone: evaluation inputs never change."""
    return [_generator(batch_seed(_EVAL_SEED, i)) for i in idx.tolist()]


def _random_windows(images: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``side`` x ``side`` window of each image: (B, C, side, side)."""
    b, _, h, w = images.shape
    corners = torch.stack([torch.randint(0, h - side + 1, (b,), generator=generator),
                           torch.randint(0, w - side + 1, (b,), generator=generator)], dim=1)  # (B, 2): (y, x)
    return torch.stack([images[i, :, y:y + side, x:x + side] for i, (y, x) in enumerate(corners.tolist())])


def _pad_boxes(boxes: list[torch.Tensor], labels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image boxes -> (B, M, 4) float32 (zero rows pad) and (B, M) int64 labels (-1 pads), M >= 1."""
    m = max(1, max(len(b) for b in boxes))
    out = torch.zeros(len(boxes), m, 4, dtype=torch.float32)
    out_labels = torch.full((len(boxes), m), -1, dtype=torch.long)
    for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
        out[i, :len(b)] = b
        out_labels[i, :len(b)] = lab
    return out, out_labels
