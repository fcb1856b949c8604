"""Patch embedding: an image becomes a sequence of patch tokens (the input of a Vision Transformer).

The image is cut into non-overlapping p x p patches, each flattened and linearly projected:

    z_l = E vec(x_l) + b,   l = 1..L,   L = (H / p) (W / p),   E in R^{D x (C p p)}

which is exactly a Conv2d with kernel = stride = p (one matmul per patch, no overlap),
then the (H/p, W/p) grid read row by row (Dosovitskiy et al., 2020, "An Image is Worth
16x16 Words", https://arxiv.org/abs/2010.11929).
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.errors import DataError


class PatchEmbedding(nn.Module):
    """(B, C, H, W) -> (B, L, D) patch tokens, L = (H / patch) * (W / patch), patches in row-major order.

    ``projection`` is named as Hugging Face ViT's ``embeddings.patch_embeddings.projection``.
    """

    def __init__(self, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        if patch_size <= 0 or in_channels <= 0 or dim <= 0:
            raise ValueError(f"patch_size {patch_size}, in_channels {in_channels}, dim {dim} must be positive")
        self.patch_size, self.in_channels, self.dim = patch_size, in_channels, dim
        self.projection = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patches per column and per row of an image of (height, width); refuses sizes the patch does not tile."""
        p = self.patch_size
        if height % p or width % p:
            raise DataError(f"a {height}x{width} image does not split into {p}x{p} patches; resize or crop it "
                            f"to a multiple of {p} (e.g. {height - height % p or p}x{width - width % p or p}) "
                            "or choose a patch_size that divides it")
        return height // p, width // p

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> tokens (B, (H/p) * (W/p), D)."""
        if pixels.dim() != 4 or pixels.shape[1] != self.in_channels:
            raise DataError(f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(pixels.shape)}; "
                            f"this model takes {self.in_channels}-channel images")
        self.grid(pixels.shape[2], pixels.shape[3])
        return self.projection(pixels).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h*w, D)
