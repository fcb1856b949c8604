"""nn.shrink: removing heads and hidden units. Reference: the unshrunk module with the removed units'
output-projection columns zeroed (their contribution is then exactly zero), so outputs must match; parameter
counts against hand formulas; T5's shared position bias narrowed through ``head_index``."""

from __future__ import annotations

import pytest
import torch

from fromzero.models.t5 import GatedGELUFFN, ReLUFFN
from fromzero.nn import MLP, CrossAttention, KVCache, SelfAttention, SwiGLU
from fromzero.nn.shrink import keep_heads, keep_neurons


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _zero_head_columns(attn: torch.nn.Module, heads: list[int]) -> None:
    with torch.no_grad():
        for h in heads:
            attn.proj.weight[:, h * attn.head_dim:(h + 1) * attn.head_dim] = 0.0


def test_keep_heads_self_attention_outputs_and_parameter_count() -> None:
    torch.manual_seed(0)
    C, H, D = 24, 4, 6
    attn = SelfAttention(C, H, causal=True, bias=True, head_dim=D).eval()
    _zero_head_columns(attn, [0, 2])
    x = torch.randn(2, 5, C)
    before, n_before = attn(x), _params(attn)
    keep_heads(attn, torch.tensor([1, 3]))
    assert attn.n_head == attn.n_kv_head == 2 and attn.qkv.weight.shape == (3 * 2 * D, C)
    assert n_before - _params(attn) == 2 * (3 * D * C + 3 * D + C * D)  # q, k, v rows + biases, proj columns
    torch.testing.assert_close(attn(x), before, atol=1e-6, rtol=0)
    assert attn.head_index.tolist() == [1, 3] and "head_index" in attn.state_dict()


def test_keep_heads_narrows_a_shared_position_bias() -> None:
    torch.manual_seed(1)
    C, H, D, T = 16, 4, 8, 5
    attn = SelfAttention(C, H, causal=False, bias=False, head_dim=D, scale=1.0).eval()
    _zero_head_columns(attn, [1])
    bias = torch.randn(1, H, T, T)  # computed once for all heads, as T5's stack does
    x = torch.randn(3, T, C)
    before = attn(x, position_bias=bias)
    keep_heads(attn, torch.tensor([0, 2, 3]))
    torch.testing.assert_close(attn(x, position_bias=bias), before, atol=1e-6, rtol=0)
    keep_heads(attn, torch.tensor([0, 2]))  # composes: original heads 0 and 3
    assert attn.head_index.tolist() == [0, 3]


def test_keep_heads_cross_attention() -> None:
    torch.manual_seed(2)
    attn = CrossAttention(16, 4, head_dim=4, memory_dim=12, bias=True).eval()
    _zero_head_columns(attn, [0, 1, 3])
    x, memory = torch.randn(2, 3, 16), torch.randn(2, 7, 12)
    before, n_before = attn(x, memory), _params(attn)
    keep_heads(attn, torch.tensor([2]))
    assert n_before - _params(attn) == 3 * (4 * 16 + 4 + 2 * (4 * 12 + 4) + 16 * 4)
    torch.testing.assert_close(attn(x, memory), before, atol=1e-6, rtol=0)


@pytest.mark.parametrize("make, inputs", [
    (lambda: MLP(12, 20, bias=True), 1), (lambda: SwiGLU(12, 20, bias=False), 2),
    (lambda: ReLUFFN(12, 20), 1), (lambda: GatedGELUFFN(12, 20), 2)])
def test_keep_neurons_outputs_and_parameter_count(make, inputs: int) -> None:
    torch.manual_seed(3)
    mlp = make().eval()
    removed = [0, 5, 6, 19]
    with torch.no_grad():
        mlp.proj.weight[:, removed] = 0.0
    x = torch.randn(2, 4, 12)
    before, n_before = mlp(x), _params(mlp)
    bias = mlp.proj.bias is not None
    keep_neurons(mlp, torch.tensor([i for i in range(20) if i not in removed]))
    assert mlp.proj.in_features == 16
    assert n_before - _params(mlp) == len(removed) * (inputs * (12 + bias) + 12)
    torch.testing.assert_close(mlp(x), before, atol=1e-6, rtol=0)


def test_bad_indices_and_grouped_query_attention_are_refused() -> None:
    attn = SelfAttention(16, 4, bias=False)
    for index in ([], [0, 0], [4], [-1]):
        with pytest.raises(ValueError):
            keep_heads(attn, torch.tensor(index, dtype=torch.long))
    with pytest.raises(ValueError, match="n_kv_head"):
        keep_heads(SelfAttention(16, 4, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="feed-forward"):
        keep_neurons(attn, torch.tensor([0]))


def test_kv_cache_takes_per_layer_head_counts() -> None:
    cache = KVCache(2, batch=1, n_kv_head=[3, 1], head_dim=4, max_len=5)
    assert [k.shape[1] for k in cache.keys] == [3, 1]
    with pytest.raises(ValueError):
        KVCache(2, batch=1, n_kv_head=[3], head_dim=4, max_len=5)
