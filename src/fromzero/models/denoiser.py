"""Image denoisers that learn the noise, not the image (residual learning): DnCNN and a U-Net.

    r = f(y)                       the network predicts the noise (residual) of the noisy image y
    x_hat = y - r                  the clean estimate, (B, C, H, W), trained against the clean x

DnCNN (Zhang et al., 2017, "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image Denoising",
https://arxiv.org/abs/1608.03981): conv3x3-ReLU, then (conv3x3-BN-ReLU) x (depth - 2), then conv3x3 to C
channels; the paper uses depth 17 and 64 channels for Gaussian denoising at a known noise level. Because
clean images are close to y, the residual is the easier target and BatchNorm plus residual learning train
fast. ``arch: unet`` puts the U-Net body (:class:`fromzero.nn.unet.UNetBody`, padded convs, any size)
in place of f, with the same residual output. Inputs and targets are in [0, 1] (not mean/std
normalised); the output is not clamped, so the loss keeps its gradient at the range's edges (clamp
before saving or scoring an image). ``zero_init_last`` (the default; the paper keeps the usual random
init) starts f's last conv at zero: the untrained model is the identity y -> y, so training starts from
"no worse than the noisy input" instead of from a random residual of the same size as the image, and
only the corrections are learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.models.image_config import require_image_io
from fromzero.models.registry import register_family, register_model
from fromzero.nn.conv import ConvBNAct, init_conv_weights
from fromzero.nn.unet import UNetBody


@dataclass(frozen=True)
class DenoiserConfig:
    """Shape of a residual denoiser. Validated on construction."""

    arch: Literal["dncnn", "unet"] = field("dncnn", help="the network predicting the noise: dncnn or unet")
    in_channels: int = field(1, help="image channels (1 grayscale, 3 RGB); the output has as many")
    depth: int = field(17, help="dncnn: conv layers in all (the paper: 17 for Gaussian noise)")
    width: int = field(64, help="dncnn: channels of the hidden conv layers")
    widths: list[int] = field([32, 64, 128], help="unet: channels per level, finest first; len - 1 poolings")
    up: Literal["transpose", "bilinear"] = field("transpose", help="unet: 2x2 transposed conv or bilinear + 1x1")
    zero_init_last: bool = field(True, help="start the last conv at zero, so the model begins as the identity "
                                 "(false: the paper's random init)")

    def __post_init__(self) -> None:
        require_image_io(self.in_channels)
        require(self.depth >= 2, "depth", f"must be >= 2 (first and last conv), got {self.depth}")
        require(self.width > 0, "width", f"must be positive, got {self.width}")
        require(len(self.widths) >= 1 and all(w > 0 for w in self.widths), "widths",
                f"must be one or more positive channel counts, got {self.widths}")


class DnCNN(nn.Sequential):
    """The DnCNN noise predictor: (B, C, H, W) -> residual (B, C, H, W)."""

    def __init__(self, channels: int, depth: int = 17, width: int = 64) -> None:
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        layers += [ConvBNAct(width, width, 3) for _ in range(depth - 2)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1, bias=False))
        super().__init__(*layers)
        init_conv_weights(self)

    @property
    def last(self) -> nn.Conv2d:
        return self[-1]


class Denoiser(nn.Module):
    """``forward(noisy (B, C, H, W) in [0, 1]) -> clean estimate noisy - net(noisy)``, same shape."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        c = self.config = config
        if c.arch == "dncnn":
            self.net: nn.Module = DnCNN(c.in_channels, c.depth, c.width)
            last = self.net.last
        else:
            self.net = UNetBody(c.in_channels, c.in_channels, c.widths, up=c.up)
            last = self.net.head
        if c.zero_init_last:
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)

    def residual(self, noisy: torch.Tensor) -> torch.Tensor:
        """noisy (B, C, H, W) -> the predicted noise (B, C, H, W)."""
        return self.net(noisy)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        """noisy (B, C, H, W) in [0, 1] -> clean estimate (B, C, H, W) (not clamped)."""
        return noisy - self.residual(noisy)


register_family("denoiser", DenoiserConfig, Denoiser)


@register_model("dncnn-small")
def dncnn_small() -> DenoiserConfig:
    """DnCNN with 10 layers of 48 channels (~0.17M parameters), grayscale."""
    return DenoiserConfig(arch="dncnn", in_channels=1, depth=10, width=48)


@register_model("denoise-unet-small")
def denoise_unet_small() -> DenoiserConfig:
    """A residual U-Net denoiser with three levels 16-32-64, grayscale."""
    return DenoiserConfig(arch="unet", in_channels=1, widths=[16, 32, 64])
