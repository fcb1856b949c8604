"""A CTC speech recogniser: a strided convolutional front end and a bidirectional Transformer encoder.

    x         (B, T, F)      log-mel frames, F = n_mels, 100 per second
    h_1       = ReLU(Conv2d_{3x3, stride 2}(x as (B, 1, T, F)))      (B, C, T1, F1)   T1 = floor((T - 1) / 2) + 1
    h_2       = ReLU(Conv2d_{3x3, stride 2}(h_1))                    (B, C, T2, F2)   time / 4: 25 frames per second
    z_0       = Dropout(W_in flatten(h_2) + b)                       (B, T2, d_model)
    z_l       = Block_l(z_{l-1}), l = 1..L     pre-norm, bidirectional self-attention with RoPE and key padding
    logits    = W_out LN(z_L)                                        (B, T2, V), V = characters + the blank (id 0)

As in ESPnet's ``Conv2dSubsampling`` (Watanabe et al. 2018) and the front ends of the Speech-Transformer
(Dong et al. 2018) and Conformer (Gulati et al. 2020). Each conv has kernel 3, stride 2 and padding 1, so a
length n becomes floor((n - 1) / 2) + 1; the input and the first conv's output past each utterance's length are
zeroed, so an utterance's outputs do not depend on how much padding its batch added.
``forward(features, feature_lengths) -> (logits (B, T2, V), output lengths (B,))``, what
``objectives/ctc.py`` takes. Rotary positions (Su et al. 2021) are relative, so no table of learned
positions ties the model to the training utterances' lengths; ``max_frames`` (input frames) only sizes the
rotation table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.nn import MLP, Block, LayerNorm, Linear, RotaryEmbedding, SelfAttention, build_attention_mask


@dataclass(frozen=True)
class CTCSpeechConfig:
    """Shape of a CTC speech recogniser. Validated on construction."""

    n_mels: int = field(80, help="log-mel bins per input frame")
    vocab_size: int = field(29, help="output symbols: the blank (id 0) plus the characters")
    conv_channels: int = field(32, help="channels of the two stride-2 conv layers (time / 4)")
    d_model: int = field(144, help="encoder width; must be divisible by n_head")
    n_layer: int = field(4, help="Transformer encoder blocks")
    n_head: int = field(4, help="attention heads")
    mlp_hidden: int | None = field(None, help="FFN hidden size (null = 4*d_model)")
    dropout: float = field(0.1, help="dropout after the front end, on attention and residual branches")
    max_frames: int = field(3000, help="longest input in frames (30 s at 10 ms): sizes the rotary table")

    def __post_init__(self) -> None:
        for key in ("n_mels", "conv_channels", "n_layer", "n_head", "max_frames"):
            require(getattr(self, key) > 0, key, f"must be positive, got {getattr(self, key)}")
        require(self.vocab_size >= 2, "vocab_size", f"needs the blank and at least one symbol, got {self.vocab_size}")
        require(self.d_model % self.n_head == 0 and (self.d_model // self.n_head) % 2 == 0, "d_model",
                f"{self.d_model} must be n_head ({self.n_head}) times an even head size (rotary positions)")
        require(self.mlp_hidden is None or self.mlp_hidden > 0, "mlp_hidden", "must be positive or null")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


def conv_output_length(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after one kernel-3, stride-2, padding-1 conv: floor((n - 1) / 2) + 1 (0 stays 0)."""
    return torch.where(lengths > 0, torch.div(lengths - 1, 2, rounding_mode="floor") + 1, lengths)


def output_lengths(feature_lengths: torch.Tensor) -> torch.Tensor:
    """Encoder frames for input lengths (B,): two stride-2 convs, about a quarter."""
    return conv_output_length(conv_output_length(feature_lengths))


def _quarter(n: int) -> int:
    """:func:`output_lengths` of one positive int (sizes are computed without tensors: meta-device builds)."""
    for _ in range(2):
        n = (n - 1) // 2 + 1
    return n


class ConvFrontEnd(nn.Module):
    """Two 3x3 stride-2 Conv2d + ReLU over (time, mel), flattened and projected to d_model."""

    def __init__(self, n_mels: int, channels: int, d_model: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        freq = _quarter(n_mels)
        self.proj = Linear(channels * freq, d_model)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, T, F), lengths (B,) -> (B, T2, d_model), lengths (B,)."""
        real = torch.arange(features.shape[1], device=features.device)[None, :] < lengths[:, None]  # (B, T)
        h = torch.relu(self.conv1((features * real[:, :, None].to(features.dtype)).unsqueeze(1)))  # (B, C, T1, F1)
        len1 = conv_output_length(lengths)
        keep = torch.arange(h.shape[2], device=h.device)[None, :] < len1[:, None]  # (B, T1)
        h = h * keep[:, None, :, None].to(h.dtype)  # padding frames stay zero, as the conv's own padding
        h = torch.relu(self.conv2(h))  # (B, C, T2, F2)
        B, C, T2, F2 = h.shape
        return self.proj(h.permute(0, 2, 1, 3).reshape(B, T2, C * F2)), conv_output_length(len1)


class CTCSpeech(nn.Module):
    """``forward(features (B, T, n_mels), feature_lengths (B,)) -> (logits (B, T', V), lengths (B,))``."""

    def __init__(self, config: CTCSpeechConfig) -> None:
        super().__init__()
        c = self.config = config
        self.front = ConvFrontEnd(c.n_mels, c.conv_channels, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        rope = RotaryEmbedding(c.head_dim, _quarter(c.max_frames))
        self.blocks = nn.ModuleList(
            Block(SelfAttention(c.d_model, c.n_head, causal=False, dropout=c.dropout, rope=rope),
                  MLP(c.d_model, c.mlp_hidden or 4 * c.d_model, dropout=c.dropout),
                  LayerNorm(c.d_model), LayerNorm(c.d_model), pre_norm=True)
            for _ in range(c.n_layer))
        self.norm_f = LayerNorm(c.d_model)
        self.head = Linear(c.d_model, c.vocab_size)

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, T, F), feature_lengths (B,) -> logits (B, T', V), output lengths (B,)."""
        if features.dim() != 3 or features.shape[-1] != self.config.n_mels:
            raise ValueError(f"features must be (B, T, {self.config.n_mels}), got {tuple(features.shape)}")
        if features.shape[1] > self.config.max_frames:
            raise ValueError(f"{features.shape[1]} frames exceed max_frames {self.config.max_frames}; "
                             "cut the audio shorter or raise model.max_frames")
        feature_lengths = feature_lengths.to(features.device)
        x, lengths = self.front(features, feature_lengths)  # (B, T', C), (B,)
        x = self.drop(x)
        T = x.shape[1]
        keys = torch.arange(T, device=x.device)[None, :] < lengths[:, None]  # (B, T') True for real frames
        mask = build_attention_mask(keys, T, T, causal=False, device=x.device)
        for block in self.blocks:
            x = block(x, mask=mask)
        return self.head(self.norm_f(x)), lengths


register_family("ctc-speech", CTCSpeechConfig, CTCSpeech)


@register_model("ctc-speech-tiny")
def ctc_speech_tiny() -> CTCSpeechConfig:
    """2 blocks, 96 wide, 4 heads, 16 conv channels (~0.3M parameters): smoke tests and CPU demos."""
    return CTCSpeechConfig(conv_channels=16, d_model=96, n_layer=2, n_head=4)


@register_model("ctc-speech-small")
def ctc_speech_small() -> CTCSpeechConfig:
    """6 blocks, 256 wide, 4 heads, 64 conv channels (~5.5M parameters): a real synthetic-speech run."""
    return CTCSpeechConfig(conv_channels=64, d_model=256, n_layer=6, n_head=4)
