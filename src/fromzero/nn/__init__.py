"""Building blocks shared by every model family (torch only)."""

from fromzero.nn.attention import SelfAttention, attention_bias, build_attention_mask, causal_mask
from fromzero.nn.block import Block
from fromzero.nn.cross_attention import CrossAttention, CrossKVCache
from fromzero.nn.kv_cache import KVCache
from fromzero.nn.linear import Linear
from fromzero.nn.mlp import MLP, SwiGLU, swiglu_hidden
from fromzero.nn.norms import LayerNorm, RMSNorm, make_norm
from fromzero.nn.positions import (
    LearnedPositions,
    RelativePositionBias,
    RotaryEmbedding,
    relative_position_bucket,
    rotate_half,
)

__all__ = [
    "MLP", "Block", "CrossAttention", "CrossKVCache", "KVCache", "LayerNorm", "Linear", "LearnedPositions",
    "RMSNorm", "RelativePositionBias", "RotaryEmbedding", "SelfAttention", "SwiGLU", "attention_bias",
    "build_attention_mask", "causal_mask", "make_norm", "relative_position_bucket", "rotate_half",
    "swiglu_hidden",
]
