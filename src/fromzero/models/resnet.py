"""ResNet: stages of residual blocks, y = relu(F(x) + s(x)), then global average pooling and a linear classifier.

    stem:     imagenet: conv7x7/2 -> BN -> ReLU -> maxpool3x3/2   (224 -> 56, as torchvision)
              small:    conv3x3/1 -> BN -> ReLU                    (28 -> 28, for Fashion-MNIST-sized inputs)
    stage s:  layers[s] blocks of width w_s = width * 2^s; the first block of stages s > 0 has stride 2
    head:     logits = W avgpool(h) + b

Blocks are :class:`fromzero.nn.conv.BasicBlock` (two 3x3 convs, ResNet-18/34) or
:class:`fromzero.nn.conv.Bottleneck` (1x1 -> 3x3 -> 1x1 with 4x expansion, stride on the
3x3 as in torchvision's "ResNet v1.5"); the shortcut is a strided 1x1 conv + BN where
the shape changes (option B). With the imagenet stem and width 64 the layer shapes are
torchvision's exactly: ``resnet18`` has 11,689,512 parameters and ``resnet50``
25,557,032 (3 channels, 1000 classes).

Reference: He et al., 2016, "Deep Residual Learning for Image Recognition",
https://arxiv.org/abs/1512.03385; zero-initialised last BN of each branch: Goyal et
al., 2017, https://arxiv.org/abs/1706.02677.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.models.image_config import require_image_io
from fromzero.models.registry import register_family, register_model
from fromzero.nn.conv import BasicBlock, Bottleneck, ConvBNAct, init_conv_weights

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


@dataclass(frozen=True)
class ResNetConfig:
    """Shape of a ResNet. Validated on construction."""

    block: Literal["basic", "bottleneck"] = field("basic", help="residual block: basic (two 3x3) | bottleneck "
                                                  "(1x1-3x3-1x1, 4x expansion)")
    layers: list[int] = field([2, 2, 2, 2], help="blocks per stage ([2,2,2,2] ResNet-18, [3,4,6,3] ResNet-34/50)")
    width: int = field(64, help="channels of the first stage (doubled at every later stage)")
    stem: Literal["imagenet", "small"] = field("imagenet", help="imagenet: 7x7/2 conv + 3x3/2 max pool (4x "
                                               "smaller maps); small: one 3x3 stride-1 conv, for 28x28 inputs")
    in_channels: int = field(3, help="image channels (1 grayscale, 3 RGB)")
    num_classes: int = field(1000, help="number of classes")
    zero_init_residual: bool = field(True, help="start each block's last BN at zero (every block begins as the "
                                     "identity; helps small-batch training)")

    def __post_init__(self) -> None:
        require(len(self.layers) > 0 and all(n > 0 for n in self.layers), "layers",
                f"must be a non-empty list of positive block counts, got {self.layers}")
        require(self.width > 0, "width", f"must be positive, got {self.width}")
        require_image_io(self.in_channels, self.num_classes, 2)

    @property
    def feature_dim(self) -> int:
        """Channels of the pooled features the classifier reads."""
        return self.width * 2 ** (len(self.layers) - 1) * BLOCKS[self.block].expansion


class ResNet(nn.Module):
    """``forward(pixels (B, C, H, W)) -> logits (B, num_classes)``; :meth:`features` gives the pooled vector.

    Any input size works (global average pooling); each stride-2 step rounds up.
    """

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        c = self.config = config
        if c.stem == "imagenet":
            self.stem = nn.Sequential(ConvBNAct(c.in_channels, c.width, 7, 2), nn.MaxPool2d(3, 2, padding=1))
        else:
            self.stem = nn.Sequential(ConvBNAct(c.in_channels, c.width, 3, 1))
        block = BLOCKS[c.block]
        stages, c_in = [], c.width
        for s, n_blocks in enumerate(c.layers):
            blocks = []
            for b in range(n_blocks):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(block(c_in, c.width * 2 ** s, stride, zero_init_residual=c.zero_init_residual))
                c_in = blocks[-1].out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_in, c.num_classes)
        init_conv_weights(self)  # convs only: the zeroed residual BNs stay zero

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> pooled features (B, feature_dim)."""
        return self.pool(self.stages(self.stem(pixels))).flatten(1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> logits (B, num_classes)."""
        return self.head(self.features(pixels))


register_family("resnet", ResNetConfig, ResNet)


@register_model("resnet18")
def resnet18() -> ResNetConfig:
    """torchvision's resnet18 shape: basic blocks [2, 2, 2, 2], width 64, ImageNet stem (11,689,512 parameters)."""
    return ResNetConfig(block="basic", layers=[2, 2, 2, 2], width=64, stem="imagenet", in_channels=3,
                        num_classes=1000)


@register_model("resnet50")
def resnet50() -> ResNetConfig:
    """torchvision's resnet50 shape: bottleneck blocks [3, 4, 6, 3], width 64 (25,557,032 parameters)."""
    return ResNetConfig(block="bottleneck", layers=[3, 4, 6, 3], width=64, stem="imagenet", in_channels=3,
                        num_classes=1000)


@register_model("resnet18-small")
def resnet18_small() -> ResNetConfig:
    """ResNet-18 for 28x28 grayscale (Fashion-MNIST): small stem, full width 64, 10 classes (~11.2M parameters)."""
    return ResNetConfig(block="basic", layers=[2, 2, 2, 2], width=64, stem="small", in_channels=1, num_classes=10)


@register_model("resnet-small-w32")
def resnet_small_w32() -> ResNetConfig:
    """The fast CPU ResNet: ResNet-18 layout at half width (32) with the small stem, 28x28 grayscale, 10 classes."""
    return ResNetConfig(block="basic", layers=[2, 2, 2, 2], width=32, stem="small", in_channels=1, num_classes=10)
