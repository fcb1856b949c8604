"""Vision Transformer (ViT): an image as a sequence of patch tokens through a Transformer encoder.

    z_0 = [x_cls; E x_1; ...; E x_L] + E_pos                   patch embedding + class token + learned positions
    z_l = Block_l(z_{l-1}),  l = 1..N                           pre-norm: z = z + MSA(LN(z)); z = z + MLP(LN(z))
    y   = LN(z_N[:, 0]);     logits = W y + b                   the class token's final state, classified

The MLP is GELU (exact erf form) between two linear layers; LayerNorm eps defaults to
1e-12, as Hugging Face's ViT. With ``num_classes = 0`` the model has no classifier and
``forward`` returns the features ``y`` (as timm does); MAE's encoder is built so.

Module names mirror Hugging Face ``ViTForImageClassification`` one to one (only the
query/key/value projections are fused into ``qkv``), so checkpoints convert with a flat
key map (:mod:`fromzero.interop.hf_vit`); ``L.`` is ``vit.encoder.layer.i.``:

    patch_embed.projection                  vit.embeddings.patch_embeddings.projection
    cls_token / pos_emb                     vit.embeddings.cls_token / vit.embeddings.position_embeddings
    blocks.i.norm1 / norm2                  L.layernorm_before / L.layernorm_after
    blocks.i.attn.qkv = [query; key; value] L.attention.attention.{query,key,value}
    blocks.i.attn.proj                      L.attention.output.dense
    blocks.i.mlp.fc / mlp.proj              L.intermediate.dense / L.output.dense
    norm / head                             vit.layernorm / classifier

Reference: Dosovitskiy et al., 2020, "An Image is Worth 16x16 Words: Transformers for
Image Recognition at Scale", https://arxiv.org/abs/2010.11929.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.errors import DataError
from fromzero.models.registry import register_family, register_model
from fromzero.nn import MLP, Block, LayerNorm, Linear, SelfAttention
from fromzero.nn.patch_embedding import PatchEmbedding


@dataclass(frozen=True)
class VitConfig:
    """Shape of a Vision Transformer. Validated on construction."""

    image_size: int = field(224, help="input height and width (a multiple of patch_size)")
    patch_size: int = field(16, help="side of the square patches each token embeds")
    in_channels: int = field(3, help="image channels (1 grayscale, 3 RGB)")
    num_classes: int = field(1000, help="number of classes (0: no classifier; forward returns features)")
    n_layer: int = field(12, help="number of Transformer blocks")
    n_head: int = field(12, help="number of attention heads")
    n_embd: int = field(768, help="model width; must be divisible by n_head")
    mlp_hidden: int | None = field(None, help="MLP hidden size (null = 4*n_embd)")
    dropout: float = field(0.0, help="dropout on embeddings, attention probabilities and residual branches")
    norm_eps: float = field(1e-12, help="epsilon of the LayerNorms (Hugging Face ViT: 1e-12)")
    init_std: float = field(0.02, help="std of the truncated-normal init of weights, class token and positions")

    def __post_init__(self) -> None:
        require(self.patch_size > 0, "patch_size", f"must be positive, got {self.patch_size}")
        require(self.image_size > 0 and self.image_size % self.patch_size == 0, "image_size",
                f"{self.image_size} is not a positive multiple of patch_size={self.patch_size}; resize the images "
                f"or choose a patch_size that divides {self.image_size}")
        require(self.in_channels > 0, "in_channels", f"must be positive, got {self.in_channels}")
        require(self.num_classes == 0 or self.num_classes > 1, "num_classes",
                f"must be 0 (no classifier) or at least 2, got {self.num_classes}")
        require(self.n_layer > 0, "n_layer", f"must be positive, got {self.n_layer}")
        require(self.n_head > 0, "n_head", f"must be positive, got {self.n_head}")
        require(self.n_embd % self.n_head == 0, "n_embd",
                f"{self.n_embd} is not divisible by n_head={self.n_head}; choose a multiple of {self.n_head}")
        require(self.mlp_hidden is None or self.mlp_hidden > 0, "mlp_hidden", "must be positive or null")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.norm_eps > 0, "norm_eps", "must be positive")
        require(self.init_std > 0, "init_std", "must be positive")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def ffn_hidden(self) -> int:
        return self.mlp_hidden or 4 * self.n_embd


def vit_block(dim: int, n_head: int, hidden: int, dropout: float, eps: float) -> Block:
    """A pre-norm ViT encoder block (exact-erf GELU MLP); MAE's decoder uses the same."""
    attn = SelfAttention(dim, n_head, causal=False, dropout=dropout)
    mlp = MLP(dim, hidden, dropout=dropout, approximate="none")
    return Block(attn, mlp, LayerNorm(dim, eps=eps), LayerNorm(dim, eps=eps), pre_norm=True)


def init_vit_weights(module: nn.Module, std: float) -> None:
    """Hugging Face ViT's init: truncated-normal linear and conv weights, zero biases, LayerNorm (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ViT(nn.Module):
    """``forward(pixels (B, C, H, W)) -> logits (B, num_classes)`` (features (B, n_embd) when num_classes = 0).

    :meth:`embed` (patch tokens with positions) and :meth:`encode` (class token, blocks,
    final norm) are separate so MAE's encoder can drop tokens in between.
    """

    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        c = self.config = config
        self.patch_embed = PatchEmbedding(c.patch_size, c.in_channels, c.n_embd)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.n_embd))
        self.pos_emb = nn.Parameter(torch.zeros(1, c.num_patches + 1, c.n_embd))  # position 0: the class token
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(vit_block(c.n_embd, c.n_head, c.ffn_hidden, c.dropout, c.norm_eps)
                                    for _ in range(c.n_layer))
        self.norm = LayerNorm(c.n_embd, eps=c.norm_eps)
        self.head = Linear(c.n_embd, c.num_classes) if c.num_classes else None
        init_vit_weights(self, c.init_std)
        nn.init.trunc_normal_(self.cls_token, std=c.init_std)
        nn.init.trunc_normal_(self.pos_emb, std=c.init_std)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> patch tokens plus their position embeddings (B, L, D)."""
        size = self.config.image_size
        if pixels.shape[-2:] != (size, size):
            self.patch_embed.grid(*pixels.shape[-2:])  # a size the patches do not tile gets that message first
            raise DataError(f"this ViT takes {size}x{size} images (its position embeddings are learned for "
                             f"{self.config.num_patches} patches), got {tuple(pixels.shape[-2:])}; resize them")
        return self.patch_embed(pixels) + self.pos_emb[:, 1:]

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, N, D), positions added, any subset -> final states (B, 1 + N, D), class token first."""
        cls = (self.cls_token + self.pos_emb[:, :1]).expand(tokens.shape[0], -1, -1)  # (B, 1, D)
        x = self.drop(torch.cat([cls, tokens], dim=1))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def hidden_states(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> final states (B, 1 + L, D) (Hugging Face's last_hidden_state)."""
        return self.encode(self.embed(pixels))

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> the class token's final state (B, D), what the classifier reads."""
        return self.hidden_states(pixels)[:, 0]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, H, W) -> logits (B, num_classes), or features (B, D) without a classifier."""
        y = self.features(pixels)
        return self.head(y) if self.head is not None else y


register_family("vit", VitConfig, ViT)


@register_model("vit-tiny-fashion")
def vit_tiny_fashion() -> VitConfig:
    """For 28x28 grayscale: 4x4 patches (49 tokens + class), 6 layers, 128 wide, 4 heads, MLP 512 (~1.2M params)."""
    return VitConfig(image_size=28, patch_size=4, in_channels=1, num_classes=10, n_layer=6, n_head=4, n_embd=128,
                     mlp_hidden=512, dropout=0.0)


@register_model("vit-base-patch16-224")
def vit_base_patch16_224() -> VitConfig:
    """google/vit-base-patch16-224's shape: 224x224 RGB, 16x16 patches, 12 layers, 768 wide, 1000 classes (86.6M)."""
    return VitConfig(image_size=224, patch_size=16, in_channels=3, num_classes=1000, n_layer=12, n_head=12,
                     n_embd=768, mlp_hidden=3072)
