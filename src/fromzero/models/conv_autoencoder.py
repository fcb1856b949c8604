"""A convolutional autoencoder: an image squeezed through one vector z and rebuilt from it.

Encoder, for widths w_1..w_D (D stride-2 stages, S = image_size / 2^D):
    h = ConvBNReLU_{stride 2}(...ConvBNReLU_{stride 2}(x))       (B, w_D, S, S)
    z = W_z flatten(h) + b_z                                     (B, d_z)        the bottleneck
Decoder, the mirror image:
    g = ReLU(W_g z + b_g) reshaped                               (B, w_D, S, S)
    each stage doubles the size: ConvTranspose 4x4 stride 2 + BN + ReLU (``up: transpose``), or
    nearest 2x upsampling + ConvBNReLU 3x3 (``up: upsample``, no checkerboard artefacts: Odena et al. 2016)
    x_hat = sigmoid(Conv3x3(g))                      (B, C, H, W) in (0, 1)   (``output: linear``: no sigmoid)

Trained by ``fromzero train`` with ``task: denoising`` (objectives/denoising.py: MSE between x_hat and the clean
image; ``noise.sigma: 0`` makes it a plain autoencoder, a positive sigma a denoising one, Vincent et al. 2008).
``embed(x) -> z`` gives the image's code. Images must be ``image_size`` square (the linear bottleneck fixes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.errors import DataError
from fromzero.models.image_config import require_image_io
from fromzero.models.registry import register_family, register_model
from fromzero.nn.conv import ConvBNAct, init_conv_weights


@dataclass(frozen=True)
class ConvAutoencoderConfig:
    """Shape of a convolutional autoencoder. Validated on construction."""

    in_channels: int = field(1, help="image channels (1 grayscale, 3 RGB); the output has as many")
    image_size: int = field(28, help="square input size; must be divisible by 2^len(widths)")
    widths: list[int] = field([32, 64], help="channels of the stride-2 encoder stages, first stage first")
    d_z: int = field(32, help="bottleneck: the width of the one vector z the decoder sees")
    up: Literal["transpose", "upsample"] = field("transpose", help="decoder stages: 4x4 stride-2 transposed "
                                                 "conv, or nearest 2x upsampling + 3x3 conv")
    output: Literal["sigmoid", "linear"] = field("sigmoid", help="sigmoid keeps x_hat in (0, 1)")

    def __post_init__(self) -> None:
        require_image_io(self.in_channels)
        require(self.d_z > 0, "d_z", f"the bottleneck must be positive, got {self.d_z}")
        require(len(self.widths) >= 1 and all(w > 0 for w in self.widths), "widths",
                f"must be one or more positive channel counts, got {self.widths}")
        step = 2 ** len(self.widths)
        require(self.image_size > 0 and self.image_size % step == 0, "image_size",
                f"{self.image_size} is not divisible by 2^{len(self.widths)} = {step} (one halving per width)")

    @property
    def code_size(self) -> int:
        """S: the side of the encoder's last feature map."""
        return self.image_size // 2 ** len(self.widths)


def _up_stage(c_in: int, c_out: int, up: str) -> nn.Module:
    """(B, c_in, S, S) -> (B, c_out, 2S, 2S)."""
    if up == "transpose":
        return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                             nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), ConvBNAct(c_in, c_out, 3))


class ConvAutoencoder(nn.Module):
    """``forward(x (B, C, H, W) in [0, 1]) -> x_hat`` of the same shape; ``embed(x) -> z (B, d_z)``."""

    def __init__(self, config: ConvAutoencoderConfig) -> None:
        super().__init__()
        c = self.config = config
        w, S = list(c.widths), c.code_size
        self.encoder = nn.Sequential(*(ConvBNAct(c_in, c_out, 3, stride=2)
                                       for c_in, c_out in zip([c.in_channels, *w[:-1]], w, strict=True)))
        self.to_z = nn.Linear(w[-1] * S * S, c.d_z)  # W_z
        self.from_z = nn.Linear(c.d_z, w[-1] * S * S)  # W_g
        outs = [*reversed(w[:-1]), w[0]]  # stage i maps reversed(w)[i] -> outs[i]
        self.decoder = nn.Sequential(*(_up_stage(c_in, c_out, c.up)
                                       for c_in, c_out in zip(reversed(w), outs, strict=True)))
        self.head = nn.Conv2d(w[0], c.in_channels, 3, padding=1)
        init_conv_weights(self)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, image_size, image_size) -> z (B, d_z)."""
        c = self.config
        if x.shape[1:] != (c.in_channels, c.image_size, c.image_size):
            raise DataError(f"conv-autoencoder: images must be {c.in_channels} x {c.image_size} x {c.image_size} "
                            f"(model.in_channels, model.image_size), got {tuple(x.shape[1:])}; resize them")
        return self.to_z(self.encoder(x).flatten(1))

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, d_z) -> x_hat (B, C, H, W)."""
        c = self.config
        g = torch.relu(self.from_z(z)).view(-1, c.widths[-1], c.code_size, c.code_size)
        out = self.head(self.decoder(g))
        return torch.sigmoid(out) if c.output == "sigmoid" else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> x_hat (B, C, H, W)."""
        return self.reconstruct(self.embed(x))


register_family("conv-autoencoder", ConvAutoencoderConfig, ConvAutoencoder)


@register_model("conv-autoencoder-fashion")
def conv_autoencoder_fashion() -> ConvAutoencoderConfig:
    """28x28 grayscale -> 32x14x14 -> 64x7x7 -> z of 32 -> back (~0.27M parameters)."""
    return ConvAutoencoderConfig(in_channels=1, image_size=28, widths=[32, 64], d_z=32)
