"""SelfAttention and masks against a naive per-head reference written here; causality; KV cache."""

from __future__ import annotations

import math

import pytest
import torch

from fromzero.models import create_model
from fromzero.nn import RotaryEmbedding, SelfAttention, build_attention_mask, causal_mask

B, T, C, H = 2, 7, 32, 4


def naive_rope(x: torch.Tensor, pos: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate-half RoPE on (T, D) rows at integer positions (T,), from the formula."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = pos.double()[:, None] * theta[None, :]  # (T, D/2)
    cos, sin = ang.cos().float(), ang.sin().float()
    a, b = x[:, : d // 2], x[:, d // 2 :]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)


def naive_attention(attn: SelfAttention, x: torch.Tensor, allowed: torch.Tensor,
                    rope: bool = False) -> torch.Tensor:
    """Loop over batch and heads; allowed (B, T, T) bool says which key each query sees."""
    h, hkv, d = attn.n_head, attn.n_kv_head, attn.head_dim
    w, bias = attn.qkv.weight, attn.qkv.bias
    wq, wk, wv = w[: h * d], w[h * d : (h + hkv) * d], w[(h + hkv) * d :]
    bq, bk, bv = bias[: h * d], bias[h * d : (h + hkv) * d], bias[(h + hkv) * d :]
    out = torch.zeros(x.shape[0], x.shape[1], h * d)
    pos = torch.arange(x.shape[1])
    for b in range(x.shape[0]):
        for head in range(h):
            g = head // (h // hkv)  # query head -> its shared key/value head
            q = x[b] @ wq[head * d : (head + 1) * d].T + bq[head * d : (head + 1) * d]
            k = x[b] @ wk[g * d : (g + 1) * d].T + bk[g * d : (g + 1) * d]
            v = x[b] @ wv[g * d : (g + 1) * d].T + bv[g * d : (g + 1) * d]
            if rope:
                q, k = naive_rope(q, pos), naive_rope(k, pos)
            scores = q @ k.T / math.sqrt(d)
            scores = scores.masked_fill(~allowed[b], float("-inf"))
            out[b, :, head * d : (head + 1) * d] = torch.softmax(scores, dim=-1) @ v
    return attn.proj(out)


def make_attn(n_kv_head: int | None = None, causal: bool = True, rope: bool = False) -> SelfAttention:
    torch.manual_seed(0)
    r = RotaryEmbedding(C // H, 64) if rope else None
    attn = SelfAttention(C, H, n_kv_head, causal=causal, rope=r).eval()
    with torch.no_grad():  # nonzero biases so the split of the bias is checked too
        attn.qkv.bias.normal_()
        attn.proj.bias.normal_()
    return attn


def tril(b: int = B) -> torch.Tensor:
    return torch.ones(T, T, dtype=torch.bool).tril().expand(b, T, T)


@pytest.mark.parametrize("n_kv_head", [None, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
def test_matches_naive(n_kv_head, causal):
    attn = make_attn(n_kv_head, causal)
    x = torch.randn(B, T, C)
    allowed = tril() if causal else torch.ones(B, T, T, dtype=torch.bool)
    with torch.no_grad():
        assert (attn(x) - naive_attention(attn, x, allowed)).abs().max() < 1e-5


@pytest.mark.parametrize("n_kv_head", [None, 2])
def test_rope_matches_naive(n_kv_head):
    attn = make_attn(n_kv_head, rope=True)
    x = torch.randn(B, T, C)
    with torch.no_grad():
        assert (attn(x) - naive_attention(attn, x, tril(), rope=True)).abs().max() < 1e-5


def test_causal_with_key_padding():
    attn = make_attn()
    x = torch.randn(B, T, C)
    pad = torch.ones(B, T, dtype=torch.bool)
    pad[0, :3] = False  # row 0 left-padded by 3
    pad[1, -2:] = False  # row 1 right-padded by 2
    allowed = tril() & pad[:, None, :]
    allowed = allowed | torch.eye(T, dtype=torch.bool)  # a padded query still sees itself
    mask = build_attention_mask(pad, T, T, causal=True)
    with torch.no_grad():
        assert (attn(x, mask=mask) - naive_attention(attn, x, allowed)).abs().max() < 1e-5


def test_causal_mask_hand_written():
    expected = torch.tensor([[1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 0],
                             [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3, 5), expected)
    assert torch.equal(causal_mask(3, 3), torch.ones(3, 3, dtype=torch.bool).tril())


def test_build_attention_mask_hand_written():
    # 3 new queries (positions 2..4) over 5 keys, the first key is padding
    m = build_attention_mask(torch.tensor([[0, 1, 1, 1, 1]]), 3, 5, causal=True)
    expected = torch.tensor([[0, 1, 1, 0, 0],
                             [0, 1, 1, 1, 0],
                             [0, 1, 1, 1, 1]], dtype=torch.bool)
    assert m.shape == (1, 1, 3, 5) and torch.equal(m[0, 0], expected)
    # padded query 0 still sees its own position (no fully masked row)
    m = build_attention_mask(torch.tensor([[0, 1, 1], [1, 1, 1]]), 3, 3, causal=True)
    assert m.shape == (2, 1, 3, 3)
    assert torch.equal(m[0, 0], torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=torch.bool))
    assert torch.equal(m[1, 0], torch.ones(3, 3, dtype=torch.bool).tril())
    # bidirectional with padding: every query sees the real keys (and itself)
    m = build_attention_mask(torch.tensor([[1, 1, 0]]), 3, 3, causal=False)
    assert torch.equal(m[0, 0], torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    # nothing to mask beyond is_causal
    assert build_attention_mask(None, 4, 4, causal=False) is None
    assert build_attention_mask(None, 1, 9, causal=True) is None


def tiny_gpt(pos: str, **kw):
    torch.manual_seed(0)
    return create_model("gpt-char-tiny", pos=pos, vocab_size=50, block_size=32, **kw).eval()


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_gpt_is_causal(pos):
    model = tiny_gpt(pos)
    ids = torch.randint(0, 50, (2, 20))
    with torch.no_grad():
        ref = model(ids)
        for t in (0, 5, 13, 18):
            changed = ids.clone()
            changed[:, t + 1 :] = torch.randint(0, 50, changed[:, t + 1 :].shape)
            out = model(changed)
            assert torch.allclose(out[:, : t + 1], ref[:, : t + 1], atol=1e-6)
            assert not torch.allclose(out[:, t + 1 :], ref[:, t + 1 :], atol=1e-3)


@pytest.mark.parametrize("batch", [1, 2])  # batch 1: one-row decode steps take fromzero Linear's one-row path
@pytest.mark.parametrize("pos,n_kv_head", [("learned", None), ("rope", None), ("rope", 2)])
def test_kv_cache_chunks_equal_full_forward(pos, n_kv_head, batch):
    model = tiny_gpt(pos, n_kv_head=n_kv_head)
    ids = torch.randint(0, 50, (batch, 15))
    cache = model.new_cache(batch=batch)
    with torch.no_grad():
        full = model(ids)
        parts, start = [], 0
        for size in (4, 1, 5, 1, 1, 3):  # prefill, single steps and multi-token chunks
            parts.append(model(ids[:, start : start + size], cache=cache))
            start += size
    assert cache.length == 15
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_kv_cache_with_left_padding(pos):
    model = tiny_gpt(pos)
    ids = torch.randint(0, 50, (2, 10))
    keep = torch.ones(2, 10, dtype=torch.bool)
    keep[0, :3] = False
    positions = (keep.long().cumsum(-1) - 1).clamp(min=0)  # real tokens start at position 0
    cache = model.new_cache(batch=2)
    with torch.no_grad():
        full = model(ids, attention_mask=keep, positions=positions)
        a = model(ids[:, :6], attention_mask=keep[:, :6], positions=positions[:, :6], cache=cache)
        b = model(ids[:, 6:], attention_mask=keep, positions=positions[:, 6:], cache=cache)
    got = torch.cat((a, b), dim=1)
    assert torch.allclose(got[keep], full[keep], atol=1e-5)
    # the padded row's real tokens equal an unpadded forward of those tokens
    with torch.no_grad():
        alone = model(ids[:1, 3:])
    assert torch.allclose(full[0, 3:], alone[0], atol=1e-5)
