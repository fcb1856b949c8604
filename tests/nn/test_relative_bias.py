"""T5 relative position buckets (vs Hugging Face and hand-computed values), RelativePositionBias, and
SelfAttention / CrossAttention / decoder Block with an additive bias against naive references."""

from __future__ import annotations

import pytest
import torch

from fromzero.nn import (
    Block,
    CrossAttention,
    CrossKVCache,
    RelativePositionBias,
    RMSNorm,
    SelfAttention,
    build_attention_mask,
    relative_position_bucket,
)

GRID = torch.arange(-300, 301).view(-1, 1) - torch.arange(0, 7).view(1, -1)  # offsets -306 .. 300, (601, 7)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("n_buckets,max_distance", [(32, 128), (8, 20), (64, 256), (6, 7)])
def test_buckets_equal_huggingface(bidirectional, n_buckets, max_distance):
    modeling_t5 = pytest.importorskip("transformers.models.t5.modeling_t5", reason="transformers is not installed")
    ref = modeling_t5.T5Attention._relative_position_bucket(GRID, bidirectional=bidirectional,
                                                           num_buckets=n_buckets, max_distance=max_distance)
    got = relative_position_bucket(GRID, bidirectional, n_buckets, max_distance)
    assert torch.equal(got, ref)
    assert got.min() >= 0 and got.max() < n_buckets


def test_buckets_hand_computed():
    # bidirectional, 32 buckets: 16 per direction, 8 exact, then log-spaced up to 128
    offsets = torch.tensor([0, -1, -7, -8, -12, -16, -127, -128, -1000, 1, 7, 8, 1000])
    expected = [0, 1, 7, 8, 9, 10, 15, 15, 15, 17, 23, 24, 31]
    # -12: 8 + floor(log(12/8) / log(16) * 8) = 8 + floor(1.17) = 9;  -16: 8 + floor(2) = 10
    assert relative_position_bucket(offsets, True, 32, 128).tolist() == expected
    # unidirectional: keys after the query (positive offsets) all share bucket 0
    uni = relative_position_bucket(torch.tensor([5, 0, -1, -15, -16, -24, -127, -500]), False, 32, 128)
    assert uni.tolist() == [0, 0, 1, 15, 16, 19, 31, 31]  # -24: 16 + floor(log(1.5) / log(8) * 16) = 19


def test_bias_module_shape_offset_and_weights():
    torch.manual_seed(0)
    rel = RelativePositionBias(n_head=3, n_buckets=8, max_distance=20, bidirectional=False)
    torch.nn.init.normal_(rel.weight)
    full = rel(9, 9)
    assert full.shape == (1, 3, 9, 9)
    assert torch.equal(rel(2, 9, offset=7), full[:, :, 7:])  # decoding with 7 cached positions
    buckets = relative_position_bucket(torch.arange(9)[None] - torch.arange(9)[:, None], False, 8, 20)
    assert torch.equal(full[0, 1], rel.weight[buckets, 1])
    with pytest.raises(ValueError, match="max_distance"):
        RelativePositionBias(4, n_buckets=32, max_distance=8)


def naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias: torch.Tensor,
          allowed: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T * scale + bias + where(allowed, 0, -inf)) V over (B, H, T, D) tensors."""
    scores = q @ k.transpose(-1, -2) * scale + bias
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    B, T, _ = x.shape
    return x.view(B, T, n_head, -1).transpose(1, 2)


def merge(y: torch.Tensor) -> torch.Tensor:
    return y.transpose(1, 2).flatten(2)


B, T, S, C, H, D = 2, 6, 9, 20, 4, 7  # inner width H * D = 28 != C = 20


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("scale", [1.0, None])
def test_self_attention_with_bias_head_dim_and_mask_matches_naive(causal, scale):
    torch.manual_seed(0)
    attn = SelfAttention(C, H, causal=causal, bias=False, head_dim=D, scale=scale).eval()
    x, bias = torch.randn(B, T, C), torch.randn(1, H, T, T)
    keep = torch.ones(B, T, dtype=torch.bool)
    keep[1, 4:] = False  # row 1 right-padded
    mask = build_attention_mask(keep, T, T, causal=causal)
    allowed = mask.expand(B, 1, T, T)
    q, k, v = (heads(t, H) for t in attn.qkv(x).split(H * D, dim=-1))
    ref = attn.proj(merge(naive(q, k, v, scale or D**-0.5, bias, allowed)))
    with torch.no_grad():
        got = attn(x, mask=mask, position_bias=bias)
        assert (got - ref).abs().max() < 1e-5
        if causal:  # no mask given: the module still applies causality on top of the bias
            tril = torch.ones(T, T, dtype=torch.bool).tril()
            ref = attn.proj(merge(naive(q, k, v, scale or D**-0.5, bias, tril)))
            assert (attn(x, position_bias=bias) - ref).abs().max() < 1e-5


def test_cross_attention_matches_naive_and_caches_the_memory():
    torch.manual_seed(0)
    attn = CrossAttention(C, H, head_dim=D, memory_dim=12, bias=False, scale=1.0).eval()
    x, memory, bias = torch.randn(B, T, C), torch.randn(B, S, 12), torch.randn(1, H, T, S)
    keep = torch.ones(B, S, dtype=torch.bool)
    keep[0, 5:] = False
    mask = keep[:, None, None, :]
    k, v = (heads(t, H) for t in attn.kv(memory).split(H * D, dim=-1))  # kv rows are [W_k; W_v]
    ref = attn.proj(merge(naive(heads(attn.q(x), H), k, v, 1.0, bias, mask)))
    cache = CrossKVCache(n_layer=2)
    with torch.no_grad():
        assert (attn(x, memory, mask=mask, position_bias=bias) - ref).abs().max() < 1e-5
        first = attn(x, memory, mask=mask, position_bias=bias, cache=cache, layer=1)
        assert cache.get(0) is None and cache.get(1) is not None
        again = attn(x, None, mask=mask, position_bias=bias, cache=cache, layer=1)  # memory not needed now
    assert torch.equal(first, again) and (first - ref).abs().max() < 1e-5
    with pytest.raises(ValueError, match="memory"):
        attn(x, None)


def test_decoder_block_is_pre_norm_self_cross_ffn():
    torch.manual_seed(0)
    attn = SelfAttention(C, H, causal=True, bias=False, head_dim=D, scale=1.0)
    cross = CrossAttention(C, H, head_dim=D, bias=False, scale=1.0)
    ffn = torch.nn.Sequential(torch.nn.Linear(C, 32), torch.nn.ReLU(), torch.nn.Linear(32, C))
    n1, nc, n2 = RMSNorm(C), RMSNorm(C), RMSNorm(C)
    for n in (n1, nc, n2):
        torch.nn.init.normal_(n.weight)
    block = Block(attn, ffn, n1, n2, cross_attn=cross, norm_cross=nc).eval()
    x, memory, bias = torch.randn(B, T, C), torch.randn(B, S, C), torch.randn(1, H, T, T)
    mmask = torch.ones(B, 1, 1, S, dtype=torch.bool)
    mmask[1, ..., 3:] = False
    with torch.no_grad():
        h = x + attn(n1(x), position_bias=bias)
        h = h + cross(nc(h), memory, mask=mmask)
        ref = h + ffn(n2(h))
        got = block(x, position_bias=bias, memory=memory, memory_mask=mmask)
    assert (got - ref).abs().max() < 1e-6
    assert [name for name, _ in block.named_children()] == ["norm1", "attn", "norm_cross", "cross_attn", "norm2",
                                                            "mlp"]
    with pytest.raises(ValueError, match="together"):
        Block(attn, ffn, n1, n2, cross_attn=cross)
