"""Convolutional building blocks shared by the image families (CNN, ResNet, Inception, detectors, U-Net).

    ConvBNAct:   y = act(BN(conv_k(x)))                        the unit every CNN here is made of
    BasicBlock:  y = relu(BN(conv3(relu(BN(conv3(x))))) + s(x))          ResNet-18/34
    Bottleneck:  y = relu(BN(conv1(relu(BN(conv3(relu(BN(conv1(x)))))))) + s(x))  ResNet-50+, 4x expansion

``s`` is the identity, or a strided 1x1 conv + BN where the shape changes
(He et al., 2016, "Deep Residual Learning for Image Recognition", option B,
https://arxiv.org/abs/1512.03385). The last BN of each residual branch can
start at zero (``zero_init_residual``) so every block begins as the identity
(Goyal et al., 2017), which helps small-batch training.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "none": nn.Identity}


def activation(name: str, inplace: bool = False) -> nn.Module:
    """A fresh activation module by name: relu | silu | gelu | none (``inplace`` where torch has it)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name](inplace=True) if inplace and name in ("relu", "silu") else ACTIVATIONS[name]()


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias: BN has one) -> BatchNorm2d -> activation; 'same' padding for odd kernels.

    (B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, act: str = "relu",
                 groups: int = 1, bn: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(activation(act, inplace=bn))  # in place on BN's output: BN's backward needs only its input
        super().__init__(*layers)
        self.out_channels = c_out


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """Two 3x3 convs in a residual branch (ResNet-18/34). (B, c_in, H, W) -> (B, c_out, H/stride, W/stride)."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int = 1, zero_init_residual: bool = True) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = ConvBNAct(c_in, width, 3, stride)
        self.conv2 = ConvBNAct(width, c_out, 3, 1, act="none")
        self.shortcut = _shortcut(c_in, c_out, stride)
        self.out_channels = c_out
        if zero_init_residual:
            nn.init.zeros_(self.conv2[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        out += self.shortcut(x)  # in place, as torchvision: saves a (B, C, H, W) buffer per block
        return torch.relu_(out)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand (x4), in a residual branch (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1, zero_init_residual: bool = True) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = ConvBNAct(c_in, width, 1)
        self.conv2 = ConvBNAct(width, width, 3, stride)
        self.conv3 = ConvBNAct(width, c_out, 1, act="none")
        self.shortcut = _shortcut(c_in, c_out, stride)
        self.out_channels = c_out
        if zero_init_residual:
            nn.init.zeros_(self.conv3[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        out += self.shortcut(x)
        return torch.relu_(out)


def downsample_stage(c_in: int, c_out: int, blocks: int, act: str = "relu") -> nn.Sequential:
    """A stride-2 ConvBNAct then ``blocks`` BasicBlocks: (B, c_in, H, W) -> (B, c_out, H/2, W/2)
    (the backbone stage both detectors are built from)."""
    return nn.Sequential(ConvBNAct(c_in, c_out, 3, 2, act), *(BasicBlock(c_out, c_out) for _ in range(blocks)))


def init_conv_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) for convs, as in the ResNet paper; BN starts at (1, 0) unless already
    zeroed for a residual branch."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
