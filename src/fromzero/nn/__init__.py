"""Building blocks shared by every model family (torch only)."""

from fromzero.nn.attention import SelfAttention, build_attention_mask, causal_mask
from fromzero.nn.block import Block
from fromzero.nn.kv_cache import KVCache
from fromzero.nn.linear import Linear
from fromzero.nn.mlp import MLP, SwiGLU, swiglu_hidden
from fromzero.nn.norms import LayerNorm, RMSNorm, make_norm
from fromzero.nn.positions import LearnedPositions, RotaryEmbedding, rotate_half

__all__ = [
    "MLP", "Block", "KVCache", "LayerNorm", "Linear", "LearnedPositions", "RMSNorm", "RotaryEmbedding",
    "SelfAttention", "SwiGLU", "build_attention_mask", "causal_mask", "make_norm", "rotate_half",
    "swiglu_hidden",
]
