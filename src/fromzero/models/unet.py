"""U-Net for semantic segmentation: the U-Net body whose last 1x1 conv is the per-pixel classifier.

    logits = conv1x1(UNetBody.features(x))          (B, num_classes, H, W), the input's H and W

Ronneberger et al., 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
https://arxiv.org/abs/1505.04597; the body (padded convolutions, BatchNorm, odd sizes handled at each
skip) is :class:`fromzero.nn.unet.UNetBody`. ``num_classes`` counts the background (class 0); a mask
pixel k + 1 is object class k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.models.image_config import require_image_io
from fromzero.models.registry import register_family, register_model
from fromzero.nn.unet import UNetBody


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a segmentation U-Net. Validated on construction."""

    in_channels: int = field(1, help="image channels (1 grayscale, 3 RGB)")
    num_classes: int = field(11, help="pixel classes including background (0); mask value k + 1 is class k")
    widths: list[int] = field([32, 64, 128, 256], help="channels per level, finest first; len - 1 poolings")
    up: Literal["transpose", "bilinear"] = field("transpose", help="2x2 transposed conv (the paper) or "
                                                 "bilinear resize + 1x1 conv")
    act: Literal["relu", "silu", "gelu"] = field("relu", help="activation after each BatchNorm")

    def __post_init__(self) -> None:
        require_image_io(self.in_channels, self.num_classes, 2, " (background + at least one class)")
        require(len(self.widths) >= 1 and all(w > 0 for w in self.widths), "widths",
                f"must be one or more positive channel counts, got {self.widths}")


class UNet(nn.Module):
    """``forward(pixels (B, C, H, W)) -> logits (B, num_classes, H, W)``; any H, W (odd sizes too)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        c = self.config = config
        self.body = UNetBody(c.in_channels, c.num_classes, c.widths, up=c.up, act=c.act)  # body.head: 1x1 classifier

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> logits (B, num_classes, H, W)."""
        return self.body(pixels)


register_family("unet", UNetConfig, UNet)


@register_model("unet-small")
def unet_small() -> UNetConfig:
    """Four levels 16-32-64-128 (~0.5M parameters), grayscale, 11 classes: background + Fashion-MNIST's 10,
    sized for 64x64 composed scenes."""
    return UNetConfig(in_channels=1, num_classes=11, widths=[16, 32, 64, 128])
