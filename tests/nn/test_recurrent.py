"""nn.recurrent: the LSTM and GRU written from their equations equal torch.nn.LSTM / torch.nn.GRU, both paths."""

from __future__ import annotations

import pytest
import torch

from fromzero.nn.recurrent import Recurrent
from fromzero.nn.recurrent_cache import RecurrentCache

TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
B, T, C, H, L = 3, 7, 5, 6, 2


def _pair(cell: str, fused: bool, dropout: float = 0.0) -> tuple[Recurrent, torch.nn.Module]:
    """torch's module and ours, ours loaded from torch's state dict (same parameter names)."""
    torch.manual_seed(0)
    ref = TORCH[cell](C, H, num_layers=L, batch_first=True, dropout=dropout).double()
    ours = Recurrent(cell, C, H, L, dropout=dropout, fused=fused).double()
    ours.load_state_dict(ref.state_dict())  # strict: the names and shapes are torch's
    return ours, ref


def _torch_state(cell: str, state: tuple[torch.Tensor, ...]):
    return state if cell == "lstm" else state[0]


@pytest.mark.parametrize("fused", [False, True], ids=["loop", "fused"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_outputs_states_and_input_gradients_equal_torch(cell: str, fused: bool) -> None:
    ours, ref = _pair(cell, fused)
    x = torch.randn(B, T, C, dtype=torch.double, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    state = tuple(torch.randn(L, B, H, dtype=torch.double) for _ in range(2 if cell == "lstm" else 1))
    out, final = ours(x, state)
    out_ref, final_ref = ref(x_ref, _torch_state(cell, state))
    final_ref = final_ref if cell == "lstm" else (final_ref,)
    assert out.shape == (B, T, H)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=0)
    for s, s_ref in zip(final, final_ref, strict=True):
        torch.testing.assert_close(s, s_ref, atol=1e-5, rtol=0)
    weights = torch.randn(B, T, H, dtype=torch.double)  # a loss that reaches every output and the final state
    ((out * weights).sum() + sum(s.sum() for s in final)).backward()
    ((out_ref * weights).sum() + sum(s.sum() for s in final_ref)).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=0)
    for name, p in ours.named_parameters():  # and every weight's gradient, under torch's name
        torch.testing.assert_close(p.grad, ref.get_parameter(name).grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_loop_equals_torch_to_1e_5(cell: str) -> None:
    """The default dtype, zero initial state: the readable loop against torch's module."""
    ours, ref = _pair(cell, fused=False)
    ours, ref = ours.float(), ref.float()
    x = torch.randn(B, T, C)
    out, final = ours(x)
    out_ref, final_ref = ref(x)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(final[0], final_ref[0] if cell == "lstm" else final_ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_step_by_hand(cell: str) -> None:
    """One layer, one step, width 1, every weight set by hand: the equations evaluated with math."""
    import math

    net = Recurrent(cell, 1, 1, 1, fused=False)
    gates = 4 if cell == "lstm" else 3
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.arange(1, gates + 1, dtype=torch.float).view(gates, 1) * 0.1)  # 0.1, 0.2, ..
        net.weight_hh_l0.fill_(0.5)
        net.bias_ih_l0.zero_()
        net.bias_hh_l0.fill_(0.1)
    x, h0 = 2.0, 0.4
    state = (torch.full((1, 1, 1), h0),) + ((torch.full((1, 1, 1), -0.3),) if cell == "lstm" else ())
    out, _ = net(torch.full((1, 1, 1), x), state)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    pre = [0.1 * (k + 1) * x + 0.5 * h0 + 0.1 for k in range(gates)]
    if cell == "lstm":
        c = sig(pre[1]) * -0.3 + sig(pre[0]) * math.tanh(pre[2])
        expected = sig(pre[3]) * math.tanh(c)
    else:
        r, z = sig(pre[0]), sig(pre[1])
        n = math.tanh(0.3 * x + r * (0.5 * h0 + 0.1))
        expected = (1 - z) * n + z * h0
    assert out.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("left", [False, True], ids=["right", "left"])
@pytest.mark.parametrize("fused", [False, True], ids=["loop", "fused"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_leaves_the_state_of_each_rows_last_real_token(cell: str, fused: bool, left: bool) -> None:
    """A padded batch gives each row's final state exactly as the row alone (torch on the unpadded row)."""
    ours, ref = _pair(cell, fused)
    lengths = [7, 3, 5]
    x = torch.randn(B, T, C, dtype=torch.double)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for r, n in enumerate(lengths):
        if left:
            mask[r, T - n:] = True
        else:
            mask[r, :n] = True
    out, final = ours(x, mask=mask)
    for r in range(B):
        real = x[r][mask[r]].unsqueeze(0)  # (1, n, C)
        out_ref, final_ref = ref(real)
        final_ref = final_ref if cell == "lstm" else (final_ref,)
        torch.testing.assert_close(out[r][mask[r]], out_ref[0], atol=1e-6, rtol=0)
        assert out[r][~mask[r]].abs().sum() == 0  # padded positions output zeros
        for s, s_ref in zip(final, final_ref, strict=True):
            torch.testing.assert_close(s[:, r], s_ref[:, 0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_between_layers_only_in_training(cell: str) -> None:
    for fused in (False, True):
        net, ref = _pair(cell, fused, dropout=0.5)
        x = torch.randn(B, T, C, dtype=torch.double)
        torch.testing.assert_close(net.eval()(x)[0], ref.eval()(x)[0], atol=1e-6, rtol=0)  # eval: no dropout
        net.train()
        assert not torch.allclose(net(x)[0], net(x)[0])  # two training passes draw different masks
    single = Recurrent(cell, C, H, 1, dropout=0.5).double().train()  # one layer: nothing between layers
    assert torch.equal(single(x)[0], single(x)[0])


def test_fused_and_loop_share_one_state_dict() -> None:
    loop = Recurrent("lstm", C, H, L, fused=False)
    fused = Recurrent("lstm", C, H, L, fused=True)
    fused.load_state_dict(loop.state_dict())
    assert list(loop.state_dict()) == [f"{w}_l{k}" for k in range(L) for w in
                                       ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    x = torch.randn(B, T, C)
    torch.testing.assert_close(loop(x)[0], fused(x)[0], atol=1e-5, rtol=0)


def test_cache_rows_share_memory_and_copy_row_moves_a_state() -> None:
    cache = RecurrentCache.zeros(2, L, 4, H, device="cpu", dtype=torch.float)
    cache.rows(2, 4).write((torch.ones(L, 2, H), torch.full((L, 2, H), 2.0)))
    assert cache.states[0][:, 2:].eq(1).all() and cache.states[0][:, :2].eq(0).all()
    cache.copy_row(3, 0)
    assert cache.states[1][:, 0].eq(2).all() and cache.batch == 4
