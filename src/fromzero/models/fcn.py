"""FCN: a fully convolutional segmenter whose coarse class scores are refined by finer skips
(Long, Shelhamer & Darrell, 2015, "Fully Convolutional Networks for Semantic Segmentation",
https://arxiv.org/abs/1411.4038), FCN-8s style.

    p_i = maxpool2(conv_stage_i(p_{i-1}))       i = 1..n, p_0 = x; p_i has stride 2**i
    s_n = score(fc7(fc6(p_n)))                  "fc6"/"fc7": 3x3 and 1x1 ConvBNAct + dropout, then 1x1 to K
    s_i = score_i(p_i) + up(s_{i+1}, size(p_i))  for the finer pooled stages, coarse to fine
    logits = up(s_finest, (H, W))               (B, K, H, W)

With n = 5 stages and ``score_levels`` = 3 the scores come from strides 32, 16 and 8 (FCN-8s); 2 gives
FCN-16s, 1 FCN-32s. The skip score layers start at zero, as in the paper, so training starts from the
coarser net and learns how much each finer stage corrects it. Departures: every ``up`` is a fixed bilinear
resize to the exact size of the map it is added to (the paper learns the 2x upsamplings, initialised
bilinear, and pads the input by 100 pixels then crops), and pooling uses ``ceil_mode`` (n rows ->
ceil(n / 2)), so any input size, odd or 1x1, comes back at its own size. Convs are ConvBNAct (BatchNorm:
trains from scratch, no VGG weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.config import field, require
from fromzero.models.image_config import require_image_io
from fromzero.models.registry import register_family, register_model
from fromzero.nn.conv import ConvBNAct, init_conv_weights


@dataclass(frozen=True)
class FcnConfig:
    """Shape of an FCN segmenter. Validated on construction."""

    in_channels: int = field(1, help="image channels (1 grayscale, 3 RGB)")
    num_classes: int = field(11, help="pixel classes including background (0); mask value k + 1 is class k")
    widths: list[int] = field([32, 64, 128, 256, 256], help="channels of each backbone stage; each stage "
                              "ends in a 2x max pool, so n stages reach stride 2**n")
    convs_per_stage: int = field(2, help="3x3 ConvBNAct layers in each backbone stage")
    head_width: int = field(256, help="channels of the fc6/fc7 conv layers on the coarsest stage")
    score_levels: int = field(3, help="pooled stages scored and fused, coarsest first: 3 = FCN-8s, "
                              "2 = FCN-16s, 1 = FCN-32s (with 5 stages)")
    dropout: float = field(0.1, help="channel dropout after fc6 and fc7")
    act: Literal["relu", "silu", "gelu"] = field("relu", help="activation after each BatchNorm")

    def __post_init__(self) -> None:
        require_image_io(self.in_channels, self.num_classes, 2, " (background + at least one class)")
        require(len(self.widths) >= 1 and all(w > 0 for w in self.widths), "widths",
                f"must be one or more positive channel counts, got {self.widths}")
        require(self.convs_per_stage >= 1, "convs_per_stage", f"must be >= 1, got {self.convs_per_stage}")
        require(self.head_width > 0, "head_width", f"must be positive, got {self.head_width}")
        require(1 <= self.score_levels <= len(self.widths), "score_levels",
                f"must be in [1, {len(self.widths)}] (one per backbone stage at most), got {self.score_levels}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")


def _stage(c_in: int, c_out: int, convs: int, act: str) -> nn.Sequential:
    layers = [ConvBNAct(c_in if i == 0 else c_out, c_out, 3, act=act) for i in range(convs)]
    return nn.Sequential(*layers, nn.MaxPool2d(2, 2, ceil_mode=True))  # (B, c_out, ceil(H/2), ceil(W/2))


class FCN(nn.Module):
    """``forward(pixels (B, C, H, W)) -> logits (B, num_classes, H, W)``; any H, W (odd sizes too)."""

    def __init__(self, config: FcnConfig) -> None:
        super().__init__()
        c = self.config = config
        ins = [c.in_channels, *c.widths[:-1]]
        self.stages = nn.ModuleList(
            _stage(c_in, c_out, c.convs_per_stage, c.act) for c_in, c_out in zip(ins, c.widths, strict=True)
        )
        self.head = nn.Sequential(  # the paper's fc6 / fc7, as convolutions
            ConvBNAct(c.widths[-1], c.head_width, 3, act=c.act), nn.Dropout2d(c.dropout),
            ConvBNAct(c.head_width, c.head_width, 1, act=c.act), nn.Dropout2d(c.dropout),
        )
        self.score = nn.Conv2d(c.head_width, c.num_classes, 1)
        # Skip scores for the finer stages, coarse to fine (e.g. pool4 then pool3).
        skip_widths = c.widths[-c.score_levels:-1][::-1]
        self.skip_scores = nn.ModuleList(nn.Conv2d(w, c.num_classes, 1) for w in skip_widths)
        init_conv_weights(self)
        for layer in self.skip_scores:
            nn.init.zeros_(layer.weight)  # start as the coarser FCN (paper, section 4.2)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> logits (B, num_classes, H, W)."""
        pooled = []
        x = pixels
        for stage in self.stages:
            x = stage(x)  # stride doubles each stage
            pooled.append(x)
        scores = self.score(self.head(x))  # (B, K, H / 2**n, W / 2**n), rounded up
        finer = pooled[-len(self.skip_scores) - 1:-1][::-1]  # the stages before the last, coarse to fine
        for layer, feature in zip(self.skip_scores, finer, strict=True):
            up = F.interpolate(scores, size=feature.shape[-2:], mode="bilinear", align_corners=False)
            scores = layer(feature) + up  # (B, K, h_i, w_i)
        return F.interpolate(scores, size=pixels.shape[-2:], mode="bilinear", align_corners=False)


register_family("fcn", FcnConfig, FCN)


@register_model("fcn-small")
def fcn_small() -> FcnConfig:
    """FCN-8s on five stages 16-32-64-128-128 (strides 8/16/32 scored), grayscale, 11 classes: background +
    Fashion-MNIST's 10, sized for 64x64 composed scenes."""
    return FcnConfig(in_channels=1, num_classes=11, widths=[16, 32, 64, 128, 128], head_width=128)
