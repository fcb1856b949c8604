"""RoPE: relative-position property, norm preservation, and a naive complex-number reference."""

from __future__ import annotations

import pytest
import torch

from fromzero.nn import LearnedPositions, RotaryEmbedding, rotate_half

D = 16


def rope_at(rope: RotaryEmbedding, x: torch.Tensor, m: int) -> torch.Tensor:
    """Rotate one vector x (D,) to position m."""
    q = x.view(1, 1, 1, -1)
    out, _ = rope(q, q, torch.tensor([m]))
    return out.view(-1)


def complex_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Pair channel i with i + D/2 as one complex number and multiply by exp(i * m * theta_i)."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double())
    z = z * torch.polar(torch.ones_like(theta), positions.double()[:, None] * theta)
    return torch.cat((z.real, z.imag), dim=-1).float()


@pytest.mark.parametrize("shift", [0, 1, 3, 17])
def test_dot_product_depends_only_on_offset(shift):
    torch.manual_seed(0)
    rope = RotaryEmbedding(D, 128)
    q, k = torch.randn(D), torch.randn(D)
    dots = [rope_at(rope, q, n + shift) @ rope_at(rope, k, n) for n in (0, 5, 30, 90)]
    for d in dots[1:]:
        assert torch.allclose(d, dots[0], atol=1e-4)


def test_rotation_changes_the_dot_product():
    torch.manual_seed(0)
    rope = RotaryEmbedding(D, 128)
    q, k = torch.randn(D), torch.randn(D)
    assert not torch.allclose(rope_at(rope, q, 3) @ rope_at(rope, k, 0), q @ k, atol=1e-3)


def test_preserves_norm():
    torch.manual_seed(0)
    rope = RotaryEmbedding(D, 64)
    q, k = torch.randn(2, 3, 10, D), torch.randn(2, 1, 10, D)
    rq, rk = rope(q, k, torch.arange(20, 30))
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    assert torch.allclose(rk.norm(dim=-1), k.norm(dim=-1), atol=1e-5)


@pytest.mark.parametrize("base", [10000.0, 500.0])
def test_matches_complex_reference(base):
    torch.manual_seed(0)
    rope = RotaryEmbedding(D, 64, base=base)
    q, k = torch.randn(2, 4, 9, D), torch.randn(2, 2, 9, D)
    pos = torch.tensor([0, 1, 2, 7, 8, 20, 33, 50, 63])
    rq, rk = rope(q, k, pos)
    assert torch.allclose(rq, complex_rope(q, pos, base), atol=1e-5)
    assert torch.allclose(rk, complex_rope(k, pos, base), atol=1e-5)


def test_per_row_positions():
    """positions (B, T): each batch row is rotated by its own positions."""
    torch.manual_seed(0)
    rope = RotaryEmbedding(D, 64)
    q = torch.randn(2, 3, 4, D)
    pos = torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8]])
    rq, _ = rope(q, q, pos)
    for b in range(2):
        assert torch.allclose(rq[b], complex_rope(q[b], pos[b]), atol=1e-5)


def test_rotate_half_and_odd_dim():
    assert torch.equal(rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([-3.0, -4.0, 1.0, 2.0]))
    with pytest.raises(ValueError):
        RotaryEmbedding(7, 8)


def test_learned_positions_lookup():
    pos = LearnedPositions(8, 4)
    with torch.no_grad():
        pos.weight.copy_(torch.arange(32.0).view(8, 4))
    assert torch.equal(pos(torch.tensor([2, 5])), pos.weight[[2, 5]])
    assert pos(torch.zeros(3, 6, dtype=torch.long)).shape == (3, 6, 4)
