"""Random augmentation of image batches, with boxes and masks kept consistent.

All functions act on float images in [0, 1], ``(B, C, H, W)``, draw from a
``torch.Generator`` (so a batch stays a pure function of its seed) and decide
per image:

- flips: ``x' = W - x`` for every box corner (x1' = W - x2, x2' = W - x1), masks flipped alike;
- random crop: pad by ``crop_padding`` on each side (zeros, masks padded with 255 = ignore; or
  reflection), then cut a window of the original size at a random offset (the CIFAR recipe of
  He et al., 2016); boxes shift with the window, are clipped to it, and a box left with less than one
  pixel of width or height is dropped;
- jitter (pixels only): brightness ``x * b`` then contrast ``(x - m) c + m`` (m = the image's mean
  gray level), ``b, c ~ U[1 - s, 1 + s]``, clipped to [0, 1], as torchvision's ColorJitter;
- mixup (Zhang et al., 2017, https://arxiv.org/abs/1710.09412): ``x = lam x_i + (1 - lam) x_j``,
  ``lam ~ Beta(a, a)``; cutmix (Yun et al., 2019, https://arxiv.org/abs/1905.04899): a box of area
  ``(1 - lam) H W`` from ``x_j`` pasted into ``x_i``, then ``lam = 1 - pasted area / (H W)`` for the box
  actually pasted after clipping. j is a random permutation of the batch; each image is mixed with
  probability ``mix_prob`` (unmixed: lam = 1, labels_b = labels), by mixup or cutmix with even odds
  when both are on. The loss is ``lam CE(labels) + (1 - lam) CE(labels_b)``. Classification only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from fromzero.config import field, require

IGNORE_MASK = 255  # segmentation mask value the loss skips (padding from a crop)
MIN_BOX_SIDE = 1.0  # pixels: a cropped box thinner than this has left the crop


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (evaluation batches are never augmented)."""

    hflip: float = field(0.0, help="probability of a horizontal flip per image")
    vflip: float = field(0.0, help="probability of a vertical flip per image")
    crop_padding: int = field(0, help="pad each side by this many pixels, then crop back at a random offset (0 = off)")
    pad_mode: Literal["zeros", "reflect"] = field("zeros", help="how the crop padding is filled")
    jitter: float = field(0.0, help="brightness/contrast strength s: factors drawn from U[1-s, 1+s] (0 = off)")
    mixup_alpha: float = field(0.0, help="mixup Beta(a, a) parameter (0 = off; classification only)")
    cutmix_alpha: float = field(0.0, help="cutmix Beta(a, a) parameter (0 = off; classification only)")
    mix_prob: float = field(1.0, help="probability that an image is mixed when mixup or cutmix is on")

    def __post_init__(self) -> None:
        for key in ("hflip", "vflip", "mix_prob"):
            require(0.0 <= getattr(self, key) <= 1.0, key, f"must be a probability in [0, 1], got {getattr(self, key)}")
        require(self.crop_padding >= 0, "crop_padding", f"must be >= 0, got {self.crop_padding}")
        require(0.0 <= self.jitter < 1.0, "jitter", f"must be in [0, 1), got {self.jitter}")
        for key in ("mixup_alpha", "cutmix_alpha"):
            require(getattr(self, key) >= 0.0, key, f"must be >= 0 (0 = off), got {getattr(self, key)}")

    @property
    def mixes(self) -> bool:
        """True if mixup or cutmix is on (the batch then carries labels_b and mix_lambda)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


Boxes = list[torch.Tensor] | None  # per image (M_i, 4) float32 xyxy


def random_flip(images: torch.Tensor, prob: float, generator: torch.Generator, *, vertical: bool = False,
                boxes: Boxes = None,
                masks: torch.Tensor | None = None) -> tuple[torch.Tensor, Boxes, torch.Tensor | None]:
    """Flip each image with probability ``prob`` (horizontally, or vertically), its boxes and mask with it."""
    b, _, h, w = images.shape
    flip = torch.rand(b, generator=generator) < prob  # (B,)
    dim, side = (-2, h) if vertical else (-1, w)
    images = torch.where(flip[:, None, None, None], images.flip(dim), images)
    if masks is not None:
        masks = torch.where(flip[:, None, None], masks.flip(dim), masks)
    if boxes is not None:
        lo, hi = (1, 3) if vertical else (0, 2)
        out = []
        for bx, f in zip(boxes, flip.tolist(), strict=True):
            if f:
                bx = bx.clone()
                bx[:, lo], bx[:, hi] = side - bx[:, hi], side - bx[:, lo]
            out.append(bx)
        boxes = out
    return images, boxes, masks


def _shift_boxes(bx: torch.Tensor, dx: int, dy: int, w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes moved by (dx, dy) and clipped to the w x h window; also the mask of boxes kept."""
    moved = bx + torch.tensor([dx, dy, dx, dy], dtype=bx.dtype)
    moved[:, 0::2] = moved[:, 0::2].clamp(0, w)
    moved[:, 1::2] = moved[:, 1::2].clamp(0, h)
    keep = ((moved[:, 2] - moved[:, 0]) >= MIN_BOX_SIDE) & ((moved[:, 3] - moved[:, 1]) >= MIN_BOX_SIDE)
    return moved[keep], keep


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator, *, pad_mode: str = "zeros",
                boxes: Boxes = None, labels: Boxes = None,
                masks: torch.Tensor | None = None) -> tuple[torch.Tensor, Boxes, Boxes, torch.Tensor | None]:
    """Pad by ``padding`` and crop each image back to its size at a random offset in [0, 2 * padding].

    Returns (images, boxes, box labels, masks); boxes that leave the crop are dropped with their labels."""
    b, _, h, w = images.shape
    p = padding
    offsets = torch.randint(0, 2 * p + 1, (b, 2), generator=generator)  # (B, 2): (ox, oy)
    mode = "constant" if pad_mode == "zeros" else "reflect"
    padded = F.pad(images, (p, p, p, p), mode=mode)  # (B, C, H + 2p, W + 2p)
    if masks is not None:
        if mode == "constant":
            padded_masks = F.pad(masks, (p, p, p, p), value=IGNORE_MASK)
        else:  # reflection pads floats only; labels < 2^24 are exact in float32
            padded_masks = F.pad(masks[:, None].float(), (p, p, p, p), mode="reflect")[:, 0].long()
    rows = offsets[:, 1, None] + torch.arange(h)  # (B, H) rows of the padded image each crop takes
    cols = offsets[:, 0, None] + torch.arange(w)  # (B, W)
    batch = torch.arange(b)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    out_masks = padded_masks[batch, rows[:, :, None], cols[:, None, :]] if masks is not None else None  # (B, H, W)
    out_boxes, out_labels = ([] if boxes is not None else None), ([] if labels is not None else None)
    if boxes is not None:
        for i, (ox, oy) in enumerate(offsets.tolist()):
            moved, keep = _shift_boxes(boxes[i], p - ox, p - oy, w, h)
            out_boxes.append(moved)
            if labels is not None:
                out_labels.append(labels[i][keep])
    return out, out_boxes, out_labels, out_masks


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Random brightness then contrast per image, factors in [1 - strength, 1 + strength]; pixels only."""
    b = images.shape[0]
    factors = 1.0 + strength * (2.0 * torch.rand(b, 2, generator=generator) - 1.0)  # (B, 2): brightness, contrast
    x = (images * factors[:, 0, None, None, None]).clamp(0, 1)
    gray = x.mean(dim=1, keepdim=True) if x.shape[1] == 1 else (
        0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])  # (B, 1, H, W) luma, as ColorJitter
    m = gray.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return ((x - m) * factors[:, 1, None, None, None] + m).clamp(0, 1)


def _beta(alpha: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws from Beta(alpha, alpha), seeded from ``generator`` (torch's Beta takes no generator)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size=n)).float()


def _cutmix_boxes(lam: torch.Tensor, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """Per image a box (y1, y2, x1, x2) of about (1 - lam) H W pixels at a uniform centre, clipped to the image."""
    cut = torch.sqrt(1.0 - lam)  # (B,) side ratio
    ch, cw = (cut * h).round().long(), (cut * w).round().long()
    cy = torch.randint(0, h, lam.shape, generator=generator)
    cx = torch.randint(0, w, lam.shape, generator=generator)
    y1, y2 = (cy - ch // 2).clamp(0, h), (cy - ch // 2 + ch).clamp(0, h)
    x1, x2 = (cx - cw // 2).clamp(0, w), (cx - cw // 2 + cw).clamp(0, w)
    return torch.stack([y1, y2, x1, x2], dim=1)  # (B, 4)


def mix_batch(images: torch.Tensor, labels: torch.Tensor, cfg: AugmentConfig,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixup / cutmix: (images, labels_b (B,) int64, mix_lambda (B,) float32 = weight of ``labels``)."""
    b, _, h, w = images.shape
    perm = torch.randperm(b, generator=generator)
    mixed = torch.rand(b, generator=generator) < cfg.mix_prob  # (B,)
    use_cutmix = torch.rand(b, generator=generator) < 0.5 if cfg.mixup_alpha > 0 and cfg.cutmix_alpha > 0 else (
        torch.full((b,), cfg.cutmix_alpha > 0))
    lam = torch.ones(b)
    if cfg.mixup_alpha > 0:
        lam = torch.where(~use_cutmix, _beta(cfg.mixup_alpha, b, generator), lam)
    if cfg.cutmix_alpha > 0:
        lam = torch.where(use_cutmix, _beta(cfg.cutmix_alpha, b, generator), lam)
    lam = torch.where(mixed, lam, torch.ones(b))
    other = images[perm]
    out = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * other  # mixup rows
    y1, y2, x1, x2 = _cutmix_boxes(lam, h, w, generator).unbind(1)  # (B,) each
    cut = mixed & use_cutmix
    ys, xs = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    inside = ((ys >= y1[:, None, None]) & (ys < y2[:, None, None]) & (xs >= x1[:, None, None])
              & (xs < x2[:, None, None]))  # (B, H, W)
    out = torch.where(cut[:, None, None, None], torch.where(inside[:, None], other, images), out)
    area = ((y2 - y1) * (x2 - x1)).float() / (h * w)
    lam = torch.where(cut, 1.0 - area, lam)  # the area actually pasted
    labels_b = torch.where(mixed, labels[perm], labels)
    return out, labels_b, lam.float()


def augment(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator, *, boxes: Boxes = None,
            box_labels: Boxes = None,
            masks: torch.Tensor | None = None) -> tuple[torch.Tensor, Boxes, Boxes, torch.Tensor | None]:
    """Flips, crop and jitter as ``cfg`` asks (mixing is :func:`mix_batch`): (images, boxes, box labels, masks)."""
    if cfg.hflip > 0:
        images, boxes, masks = random_flip(images, cfg.hflip, generator, boxes=boxes, masks=masks)
    if cfg.vflip > 0:
        images, boxes, masks = random_flip(images, cfg.vflip, generator, vertical=True, boxes=boxes, masks=masks)
    if cfg.crop_padding > 0:
        images, boxes, box_labels, masks = random_crop(images, cfg.crop_padding, generator, pad_mode=cfg.pad_mode,
                                                       boxes=boxes, labels=box_labels, masks=masks)
    if cfg.jitter > 0:
        images = color_jitter(images, cfg.jitter, generator)
    return images, boxes, box_labels, masks
