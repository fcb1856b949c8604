"""Additive (Bahdanau) attention against a per-position loop written from the paper's equations."""

from __future__ import annotations

import math

import torch

from fromzero.nn.additive_attention import AdditiveAttention


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    attn = AdditiveAttention(query_dim=5, key_dim=6, attn_dim=7)
    query = torch.randn(3, 4, 5, generator=g)  # (B, T, Q)
    keys = torch.randn(3, 8, 6, generator=g)  # (B, S, K)
    lengths = [8, 3, 5]
    mask = torch.arange(8)[None, :] < torch.tensor(lengths)[:, None]  # (B, S), right padding
    mask[2] = torch.tensor([False, True, False, True, True, False, True, True])  # any pattern, not just a prefix
    return attn, query, keys, mask


def test_weights_sum_to_one_over_real_positions_and_are_zero_at_padding() -> None:
    attn, query, keys, mask = _inputs()
    context, weights = attn(query, keys, mask)
    assert context.shape == (3, 4, 6) and weights.shape == (3, 4, 8)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert (weights.masked_select(~mask[:, None, :].expand_as(weights)) == 0).all()
    assert (weights.masked_select(mask[:, None, :].expand_as(weights)) > 0).all()


@torch.no_grad()
def test_equals_a_naive_loop_over_positions() -> None:
    attn, query, keys, mask = _inputs(1)
    context, weights = attn(query, keys, mask)
    W_s, W_h, b, v = attn.query_proj.weight, attn.key_proj.weight, attn.key_proj.bias, attn.v.weight[0]
    for bi in range(3):
        for t in range(4):
            s = query[bi, t]
            real = [j for j in range(8) if mask[bi, j]]
            e = {j: float(v @ torch.tanh(W_s @ s + W_h @ keys[bi, j] + b)) for j in real}
            z = sum(math.exp(x) for x in e.values())
            a = {j: math.exp(e[j]) / z for j in real}
            for j in range(8):
                assert abs(float(weights[bi, t, j]) - a.get(j, 0.0)) < 1e-5
            c = sum(a[j] * keys[bi, j] for j in real)
            torch.testing.assert_close(context[bi, t], c, atol=1e-5, rtol=1e-5)


def test_single_query_reused_keys_and_no_mask() -> None:
    attn, query, keys, mask = _inputs(2)
    full_c, full_w = attn(query, keys, mask)
    projected = attn.project_keys(keys)
    one_c, one_w = attn(query[:, 2], keys, mask, projected_keys=projected)  # (B, Q) query: no T axis
    torch.testing.assert_close(one_c, full_c[:, 2])
    torch.testing.assert_close(one_w, full_w[:, 2])
    all_real = torch.ones_like(mask)
    torch.testing.assert_close(attn(query, keys)[0], attn(query, keys, all_real)[0])


def test_gradients_reach_every_parameter_but_not_padded_keys() -> None:
    attn, query, keys, mask = _inputs(3)
    keys = keys.clone().requires_grad_(True)
    attn(query, keys, mask)[0].square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in attn.parameters())
    assert (keys.grad[~mask] == 0).all() and (keys.grad[mask].abs().sum(-1) > 0).all()
