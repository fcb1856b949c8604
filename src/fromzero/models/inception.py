"""Inception (GoogLeNet): modules of parallel branches at several receptive fields, concatenated along channels.

    Inception(x) = concat[ conv1x1(x),                                  ``c1``
                           conv3x3(conv1x1(x)),                         ``c3_reduce`` -> ``c3``
                           conv3x3(conv3x3(conv1x1(x))) or conv5x5(conv1x1(x)),   ``c5_reduce`` -> ``c5``
                           conv1x1(maxpool3x3/1(x)) ]                   ``pool_proj``

Every conv is conv -> BN -> ReLU (BN-Inception). The 1x1 "reduce" convs shrink the
channels before the expensive 3x3 / 5x5 ones, which is what makes the module cheap
(Szegedy et al., 2014, "Going Deeper with Convolutions", https://arxiv.org/abs/1409.4842).
With ``factorized_5x5`` the 5x5 branch is two stacked 3x3 convs: the same receptive
field with 18/25 of the weights (Szegedy et al., 2015, "Rethinking the Inception
Architecture", https://arxiv.org/abs/1512.00567).

    stem:      imagenet: conv7x7/2, maxpool3x3/2, conv1x1 64, conv3x3 192, maxpool3x3/2   (224 -> 28)
               small:    conv3x3/1 ``stem_channels``                                        (28 -> 28)
    modules:   ``modules[i]`` = [c1, c3_reduce, c3, c5_reduce, c5, pool_proj]; a 3x3/2 max pool runs before
               each module listed in ``pool_before``
    head:      logits = W Dropout(avgpool(h)) + b

The ``googlenet`` preset is the paper's table (inception 3a..5b, 1024 features); the
auxiliary classifiers are left out, as torchvision does at inference.
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

GOOGLENET_MODULES = [  # Szegedy et al. 2014, Table 1: 3a, 3b, 4a..4e, 5a, 5b
    [64, 96, 128, 16, 32, 32], [128, 128, 192, 32, 96, 64],
    [192, 96, 208, 16, 48, 64], [160, 112, 224, 24, 64, 64], [128, 128, 256, 24, 64, 64],
    [112, 144, 288, 32, 64, 64], [256, 160, 320, 32, 128, 128],
    [256, 160, 320, 32, 128, 128], [384, 192, 384, 48, 128, 128],
]


@dataclass(frozen=True)
class InceptionConfig:
    """Shape of a GoogLeNet-style network. Validated on construction."""

    in_channels: int = field(1, help="image channels (1 grayscale, 3 RGB)")
    num_classes: int = field(10, help="number of classes")
    stem: Literal["imagenet", "small"] = field("small", help="imagenet: GoogLeNet's stem (8x smaller maps); "
                                               "small: one 3x3 stride-1 conv, for 28x28 inputs")
    stem_channels: int = field(32, help="channels of the small stem's conv (the imagenet stem ends at 192)")
    modules: list[list[int]] = field(
        [[32, 32, 48, 8, 16, 16], [48, 48, 64, 12, 32, 32], [64, 48, 96, 12, 32, 32], [80, 56, 112, 16, 32, 32]],
        help="one [c1, c3_reduce, c3, c5_reduce, c5, pool_proj] per Inception module")
    pool_before: list[int] = field([0, 2], help="indices of the modules a 3x3 stride-2 max pool runs before")
    factorized_5x5: bool = field(True, help="two 3x3 convs instead of one 5x5 in the third branch")
    dropout: float = field(0.2, help="dropout on the pooled features (GoogLeNet: 0.4)")

    def __post_init__(self) -> None:
        require_image_io(self.in_channels, self.num_classes, 2)
        require(self.stem_channels > 0, "stem_channels", f"must be positive, got {self.stem_channels}")
        require(len(self.modules) > 0, "modules", "must list at least one Inception module")
        for i, spec in enumerate(self.modules):
            require(len(spec) == 6 and all(w > 0 for w in spec), f"modules[{i}]",
                    f"must be six positive widths [c1, c3_reduce, c3, c5_reduce, c5, pool_proj], got {spec}")
        require(all(0 <= i < len(self.modules) for i in self.pool_before), "pool_before",
                f"{self.pool_before} names a module outside 0..{len(self.modules) - 1}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")

    @property
    def feature_dim(self) -> int:
        """Channels of the last module's output (the pooled features)."""
        c1, _, c3, _, c5, pool_proj = self.modules[-1]
        return c1 + c3 + c5 + pool_proj


class InceptionModule(nn.Module):
    """Four parallel branches concatenated: (B, c_in, H, W) -> (B, c1 + c3 + c5 + pool_proj, H, W)."""

    def __init__(self, c_in: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int,
                 factorized_5x5: bool = True) -> None:
        super().__init__()
        self.branch1 = ConvBNAct(c_in, c1, 1)
        self.branch3 = nn.Sequential(ConvBNAct(c_in, c3_reduce, 1), ConvBNAct(c3_reduce, c3, 3))
        if factorized_5x5:
            wide = [ConvBNAct(c5_reduce, c5, 3), ConvBNAct(c5, c5, 3)]
        else:
            wide = [ConvBNAct(c5_reduce, c5, 5)]
        self.branch5 = nn.Sequential(ConvBNAct(c_in, c5_reduce, 1), *wide)
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), ConvBNAct(c_in, pool_proj, 1))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x))
        return torch.cat(branches, dim=1)  # (B, out_channels, H, W)


def _stem(c: InceptionConfig) -> tuple[nn.Sequential, int]:
    if c.stem == "imagenet":
        return nn.Sequential(ConvBNAct(c.in_channels, 64, 7, 2), nn.MaxPool2d(3, 2, padding=1),
                             ConvBNAct(64, 64, 1), ConvBNAct(64, 192, 3), nn.MaxPool2d(3, 2, padding=1)), 192
    return nn.Sequential(ConvBNAct(c.in_channels, c.stem_channels, 3)), c.stem_channels


class Inception(nn.Module):
    """``forward(pixels (B, C, H, W)) -> logits (B, num_classes)``; :meth:`features` gives the pooled vector."""

    def __init__(self, config: InceptionConfig) -> None:
        super().__init__()
        c = self.config = config
        self.stem, c_in = _stem(c)
        layers: list[nn.Module] = []
        for i, spec in enumerate(c.modules):
            if i in c.pool_before:
                layers.append(nn.MaxPool2d(3, 2, padding=1))
            layers.append(InceptionModule(c_in, *spec, factorized_5x5=c.factorized_5x5))
            c_in = layers[-1].out_channels
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c_in, c.num_classes)
        init_conv_weights(self)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> pooled features (B, feature_dim)."""
        return self.pool(self.body(self.stem(pixels))).flatten(1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> logits (B, num_classes)."""
        return self.head(self.dropout(self.features(pixels)))


register_family("inception", InceptionConfig, Inception)


@register_model("inception-small")
def inception_small() -> InceptionConfig:
    """For 28x28 grayscale: 3x3 stem (32), pool to 14x14, two modules, pool to 7x7, two modules (~0.27M parameters)."""
    return InceptionConfig()


@register_model("googlenet")
def googlenet() -> InceptionConfig:
    """GoogLeNet (paper table, BN after every conv, no auxiliary heads) for 224x224 RGB and 1000 classes."""
    return InceptionConfig(in_channels=3, num_classes=1000, stem="imagenet",
                           modules=[list(m) for m in GOOGLENET_MODULES], pool_before=[2, 7], factorized_5x5=False,
                           dropout=0.4)
