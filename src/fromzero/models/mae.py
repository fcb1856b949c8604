"""Masked autoencoder (MAE): hide most patches, encode the rest with a ViT, reconstruct the hidden pixels.

    keep   = the round(L (1 - mask_ratio)) patches with the lowest noise (noise ~ U[0, 1) per patch)
    latent = ViT.encode(E x_keep + E_pos[keep])                      encoder sees only kept patches (+ class token)
    z      = unshuffle([W_d latent_patches; mask_token, ...]) + P_dec   decoder input: every position, in order
    pred   = W_p LN(Blocks_dec([W_d latent_cls; z]))[1:]             (B, L, p*p*C) pixels per patch
    loss   = mean over masked patches of mean_j (pred_j - target_j)^2          (objectives/masked_image.py)

with ``target`` the patch's pixels, normalised per patch (mean 0, variance 1) when
``norm_pix_loss``. The encoder is a :class:`fromzero.models.vit.ViT` without a classifier
(``encoder``): its state_dict is a ``vit`` model's minus ``head.*``, so a fine-tuning run
of ``encoder_config()`` loads it directly. The encoder's (learned) position embeddings
start from the fixed 2-D sine-cosine table the paper uses; the decoder's are that table,
fixed.

Masking follows the paper's ``random_masking``: argsort the noise, keep the first
``keep`` indices, and argsort again to restore the order. The noise comes from the batch
(``mask_noise``), so a batch is a pure function of its seed.

Reference: He et al., 2021, "Masked Autoencoders Are Scalable Vision Learners",
https://arxiv.org/abs/2111.06377.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.models.vit import ViT, VitConfig, init_vit_weights, vit_block, vit_tiny_fashion
from fromzero.nn import LayerNorm, Linear


@dataclass(frozen=True)
class MaeConfig:
    """A ViT encoder's shape (the same fields as ``VitConfig``) plus MAE's decoder and masking."""

    image_size: int = field(224, help="input height and width (a multiple of patch_size)")
    patch_size: int = field(16, help="side of the square patches (the unit that is masked and reconstructed)")
    in_channels: int = field(3, help="image channels (1 grayscale, 3 RGB)")
    num_classes: int = field(1000, help="classes of the ViT that fine-tunes the encoder (encoder_config())")
    n_layer: int = field(12, help="encoder Transformer blocks")
    n_head: int = field(12, help="encoder attention heads")
    n_embd: int = field(768, help="encoder width; must be divisible by n_head")
    mlp_hidden: int | None = field(None, help="encoder MLP hidden size (null = 4*n_embd)")
    dropout: float = field(0.0, help="encoder dropout (the decoder uses none)")
    norm_eps: float = field(1e-12, help="epsilon of the LayerNorms")
    init_std: float = field(0.02, help="std of the truncated-normal init")
    decoder_dim: int = field(512, help="decoder width (a multiple of 4 and of decoder_heads)")
    decoder_layers: int = field(8, help="decoder Transformer blocks")
    decoder_heads: int = field(16, help="decoder attention heads")
    mask_ratio: float = field(0.75, help="fraction of patches hidden from the encoder")
    norm_pix_loss: bool = field(True, help="reconstruct per-patch normalised pixels (mean 0, variance 1)")

    def __post_init__(self) -> None:
        self.encoder_config()  # validates the encoder fields, naming the bad one
        require(self.decoder_dim > 0 and self.decoder_dim % 4 == 0, "decoder_dim",
                f"must be a positive multiple of 4 (2-D sine-cosine positions), got {self.decoder_dim}")
        require(self.decoder_layers > 0, "decoder_layers", f"must be positive, got {self.decoder_layers}")
        require(self.decoder_heads > 0 and self.decoder_dim % self.decoder_heads == 0, "decoder_heads",
                f"{self.decoder_heads} does not divide decoder_dim={self.decoder_dim}")
        require(0.0 <= self.mask_ratio < 1.0, "mask_ratio", f"must be in [0, 1), got {self.mask_ratio}")
        require(self.num_keep >= 1, "mask_ratio", f"{self.mask_ratio} leaves no patch of {self.num_patches} visible; "
                "lower it")

    def encoder_config(self) -> VitConfig:
        """The ``vit`` config whose model the encoder's weights load into."""
        return VitConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(VitConfig)})

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_keep(self) -> int:
        """Patches the encoder sees: round(L * (1 - mask_ratio))."""
        return round(self.num_patches * (1.0 - self.mask_ratio))


def sincos_positions_2d(dim: int, grid: int) -> torch.Tensor:
    """(grid * grid, dim) fixed 2-D sine-cosine embeddings (MAE's get_2d_sincos_pos_embed), rows row-major.

    Half the channels encode the column, half the row; each half is [sin(pos w_k), cos(pos w_k)] with
    w_k = 10000^(-k / (dim/4)), k = 0..dim/4 - 1 (Vaswani et al., 2017).
    """
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))  # (dim/4,)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                                indexing="ij")

    def one_axis(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega  # (grid*grid, dim/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (grid*grid, dim/2)

    return torch.cat([one_axis(cols), one_axis(rows)], dim=1).float()  # (grid*grid, dim)


class MaskedAutoencoder(nn.Module):
    """``forward(pixels (B, C, H, W), mask_noise (B, L)) -> (pred (B, L, p*p*C), mask (B, L), 1 = masked)``."""

    def __init__(self, config: MaeConfig) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = ViT(dataclasses.replace(c.encoder_config(), num_classes=0))  # no unused classifier weights
        grid = c.image_size // c.patch_size
        if c.n_embd % 4 == 0:
            with torch.no_grad():  # encoder positions start from the table (class token: zeros), then learn
                self.encoder.pos_emb[0, 0].zero_()
                self.encoder.pos_emb[0, 1:].copy_(sincos_positions_2d(c.n_embd, grid))
        self.decoder_embed = Linear(c.n_embd, c.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        table = torch.cat([torch.zeros(1, c.decoder_dim), sincos_positions_2d(c.decoder_dim, grid)])
        self.register_buffer("decoder_pos", table.unsqueeze(0), persistent=False)  # (1, 1 + L, Dd), fixed
        self.decoder_blocks = nn.ModuleList(
            vit_block(c.decoder_dim, c.decoder_heads, 4 * c.decoder_dim, 0.0, c.norm_eps)
            for _ in range(c.decoder_layers))
        self.decoder_norm = LayerNorm(c.decoder_dim, eps=c.norm_eps)
        self.decoder_pred = Linear(c.decoder_dim, c.patch_size ** 2 * c.in_channels)
        for part in (self.decoder_embed, self.decoder_blocks, self.decoder_pred):
            init_vit_weights(part, c.init_std)
        nn.init.normal_(self.mask_token, std=c.init_std)

    def encoder_config(self) -> VitConfig:
        """The ``vit`` config a fine-tuning run builds to load ``encoder``'s weights."""
        return self.config.encoder_config()

    def patchify(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, p*p*C): patches row-major, each flattened as (row, column, channel)."""
        p, (B, C, H, W) = self.config.patch_size, pixels.shape
        h, w = self.encoder.patch_embed.grid(H, W)
        x = pixels.reshape(B, C, h, p, w, p).permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p, p, C)
        return x.reshape(B, h * w, p * p * C)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, L, p*p*C) -> (B, C, H, W), the inverse of :meth:`patchify` (square images)."""
        p, C, grid = self.config.patch_size, self.config.in_channels, self.config.image_size // self.config.patch_size
        x = patches.reshape(patches.shape[0], grid, grid, p, p, C).permute(0, 5, 1, 3, 2, 4)  # (B, C, h, p, w, p)
        return x.reshape(patches.shape[0], C, grid * p, grid * p)

    @property
    def num_patches(self) -> int:
        return self.config.num_patches

    def reconstruct(self, pixels: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The image with its masked patches replaced by the prediction (B, C, H, W), for viewing. With
        ``norm_pix_loss`` the prediction is per-patch normalised: it is mapped back with the true patch's
        mean and std, as the paper's figures do."""
        target = self.patchify(pixels)
        if self.config.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            pred = pred * (var + 1e-6).sqrt() + mean
        m = mask.unsqueeze(-1)
        return self.unpatchify(pred * m + target * (1 - m))

    def random_masking(self, mask_noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """noise (B, L) -> (ids_keep (B, keep), ids_restore (B, L), mask (B, L) float, 1 = masked).

        The ``keep`` lowest-noise patches stay visible; ``ids_restore`` undoes the sort.
        """
        L = self.config.num_patches
        if mask_noise.dim() != 2 or mask_noise.shape[1] != L:
            raise ValueError(f"mask_noise has shape {tuple(mask_noise.shape)} but this model needs (B, {L}), one "
                             "value per patch; build the batches for this model's image_size and patch_size")
        B = mask_noise.shape[0]
        keep = self.config.num_keep
        ids_shuffle = mask_noise.argsort(dim=1, stable=True)  # ascending: kept patches first
        ids_restore = ids_shuffle.argsort(dim=1)
        mask = torch.ones(B, L, device=mask_noise.device)
        mask[:, :keep] = 0
        return ids_shuffle[:, :keep], ids_restore, mask.gather(1, ids_restore)

    def encode_visible(self, pixels: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """The encoder on the kept patches only: (B, C, H, W), (B, keep) -> latent (B, 1 + keep, D)."""
        tokens = self.encoder.embed(pixels)  # (B, L, D), positions added before the others are dropped
        kept = tokens.gather(1, ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))  # (B, keep, D)
        return self.encoder.encode(kept)

    def decode(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + keep, D), ids_restore (B, L) -> predicted pixels (B, L, p*p*C)."""
        x = self.decoder_embed(latent)  # (B, 1 + keep, Dd)
        B, L, Dd = x.shape[0], ids_restore.shape[1], x.shape[2]
        patches = torch.cat([x[:, 1:], self.mask_token.expand(B, L + 1 - x.shape[1], -1)], dim=1)  # shuffled order
        patches = patches.gather(1, ids_restore.unsqueeze(-1).expand(-1, -1, Dd))  # (B, L, Dd) image order
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # drop the class token

    def forward(self, pixels: torch.Tensor, mask_noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, C, H, W), mask_noise (B, L) -> (pred (B, L, p*p*C), mask (B, L) float, 1 = masked)."""
        ids_keep, ids_restore, mask = self.random_masking(mask_noise)
        return self.decode(self.encode_visible(pixels, ids_keep), ids_restore), mask


register_family("vit-mae", MaeConfig, MaskedAutoencoder)


@register_model("vit-mae-tiny-fashion")
def vit_mae_tiny_fashion() -> MaeConfig:
    """MAE for Fashion-MNIST: exactly the ``vit-tiny-fashion`` encoder, a 2-layer 96-wide decoder, 75% masking."""
    encoder = dataclasses.asdict(vit_tiny_fashion())
    return MaeConfig(**encoder, decoder_dim=96, decoder_layers=2, decoder_heads=4, mask_ratio=0.75, norm_pix_loss=True)
