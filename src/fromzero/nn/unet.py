"""The U-Net encoder-decoder body (Ronneberger et al., 2015, "U-Net: Convolutional Networks for Biomedical
Image Segmentation", https://arxiv.org/abs/1505.04597).

    e_0 = D_0(x)                         D_i: double conv, two ConvBNAct 3x3 ("same" padding)
    e_i = D_i(maxpool2(e_{i-1}))         i = 1..depth, widths w_0 < w_1 < ... (the contracting path)
    d_depth = e_depth
    d_i = D'_i([e_i ; crop(up(d_{i+1}))])  up: 2x2 transposed conv w_{i+1} -> w_i (the paper's "up-conv"),
                                           or bilinear resize + 1x1 conv w_{i+1} -> w_i
    y = conv1x1(d_0)                     (B, out_channels, H, W)

Two departures from the paper, both so the output has the input's size: the 3x3 convolutions are padded
(the paper's are "valid" and shrink the map), and odd sizes are handled **at each skip**, not by padding
the input. Max pooling uses ``ceil_mode``, so a map of n rows gives ceil(n / 2) (a 27x33 input goes
27x33 -> 14x17 -> 7x9 -> 4x5); the transposed conv doubles that (2 * ceil(n / 2) >= n) and the result is
cropped (bottom/right) to the skip's size; the bilinear path resizes to the skip's size exactly. No pixel
value is invented, and any size from 1x1 up works at any depth. BatchNorm after each conv (not in the
2015 paper) is what makes small-batch training stable here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.nn.conv import ConvBNAct, init_conv_weights

UP_MODES = ("transpose", "bilinear")


class DoubleConv(nn.Sequential):
    """Two 3x3 ConvBNAct: (B, c_in, H, W) -> (B, c_out, H, W), the unit of every U-Net stage."""

    def __init__(self, c_in: int, c_out: int, act: str = "relu", bn: bool = True) -> None:
        super().__init__(ConvBNAct(c_in, c_out, 3, act=act, bn=bn), ConvBNAct(c_out, c_out, 3, act=act, bn=bn))
        self.out_channels = c_out


class UpStage(nn.Module):
    """One expanding step: upsample the deeper map to the skip's size, concatenate, double conv.

    (deep (B, c_deep, h, w), skip (B, c_skip, H, W)) with ceil(H / 2) = h -> (B, c_skip, H, W).
    """

    def __init__(self, c_deep: int, c_skip: int, up: str = "transpose", act: str = "relu", bn: bool = True
                 ) -> None:
        super().__init__()
        self.mode = up
        if up == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(c_deep, c_skip, kernel_size=2, stride=2)
        else:
            self.up = nn.Conv2d(c_deep, c_skip, kernel_size=1)  # after the bilinear resize: halve the channels
        self.conv = DoubleConv(2 * c_skip, c_skip, act=act, bn=bn)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        height, width = skip.shape[-2:]
        if self.mode == "transpose":
            x = self.up(deep)[..., :height, :width]  # (B, c_skip, 2h, 2w) cropped to (H, W); 2h >= H
        else:
            x = self.up(F.interpolate(deep, size=(height, width), mode="bilinear", align_corners=False))
        return self.conv(torch.cat([skip, x], dim=1))  # (B, 2 c_skip, H, W) -> (B, c_skip, H, W)


class UNetBody(nn.Module):
    """U-Net: (B, in_channels, H, W) -> (B, out_channels, H, W) for any H, W >= 1.

    ``widths`` are the channels of each level, finest first (``len(widths) - 1`` poolings), e.g.
    (64, 128, 256, 512, 1024) in the paper. ``up`` is "transpose" (the paper's up-conv) or "bilinear".
    The last layer is a 1x1 conv (``self.head``) from ``widths[0]`` to ``out_channels``;
    :meth:`features` returns what it reads.
    """

    def __init__(self, in_channels: int, out_channels: int, widths: Sequence[int] = (64, 128, 256, 512, 1024),
                 up: str = "transpose", act: str = "relu", bn: bool = True) -> None:
        super().__init__()
        widths = list(widths)
        if len(widths) < 1 or min(widths) < 1:
            raise ValueError(f"widths must be one or more positive channel counts, got {widths}")
        if up not in UP_MODES:
            raise ValueError(f"unknown up mode {up!r}; choose one of {', '.join(UP_MODES)}")
        self.widths = widths
        ins = [in_channels, *widths[:-1]]
        self.down = nn.ModuleList(
            DoubleConv(c_in, c_out, act=act, bn=bn) for c_in, c_out in zip(ins, widths, strict=True)
        )
        self.up = nn.ModuleList(
            UpStage(widths[i + 1], widths[i], up=up, act=act, bn=bn) for i in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)
        self.out_channels = out_channels
        init_conv_weights(self)

    @property
    def depth(self) -> int:
        """Number of 2x poolings (the coarsest level is 2**depth times smaller, rounded up)."""
        return len(self.widths) - 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_channels, H, W) -> the last decoder map (B, widths[0], H, W)."""
        skips = []
        for i, stage in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)  # (B, C, ceil(H/2), ceil(W/2))
            x = stage(x)
            skips.append(x)
        x = skips.pop()  # the bottleneck
        for stage in self.up:
            x = stage(x, skips.pop())
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_channels, H, W) -> (B, out_channels, H, W)."""
        return self.head(self.features(x))
