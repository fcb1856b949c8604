"""Recurrent layers written from their equations: the LSTM and GRU cells and a multi-layer stack over time.

LSTM (Hochreiter & Schmidhuber 1997, with a forget gate: Gers et al. 2000), per step t, gates in torch's order::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)        input gate
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)        forget gate
    g = tanh   (W_ig x + b_ig + W_hg h + b_hg)        candidate cell
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)        output gate
    c' = f * c + i * g
    h' = o * tanh(c')

GRU (Cho et al. 2014), torch's variant (the reset gate scales W_hn h + b_hn)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)        reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)        update gate
    n = tanh   (W_in x + b_in + r * (W_hn h + b_hn))  candidate
    h' = (1 - z) * n + z * h

:class:`Recurrent` stacks ``num_layers`` cells (layer l reads layer l-1's outputs, with dropout between
layers) under torch's parameter names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``,
the gates' rows stacked in the order above), so a ``torch.nn.LSTM`` / ``torch.nn.GRU`` state dict loads
as is. ``fused=True`` runs the same parameters through torch's own kernel (``torch.lstm`` / ``torch.gru``:
what ``nn.LSTM.forward`` calls); ``fused=False`` is the loop below. tests/nn/test_recurrent.py proves both
equal torch's modules, outputs, final states and input gradients.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

Cell = Literal["lstm", "gru"]
GATES = {"lstm": 4, "gru": 3}
State = tuple[torch.Tensor, ...]  # LSTM: (h, c); GRU: (h,); each (num_layers, B, H)


def lstm_cell(x_proj: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh: torch.Tensor,
              b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step. x_proj (B, 4H) = W_ih x + b_ih (precomputed for all steps); h, c (B, H) -> h', c'."""
    gates = x_proj + h @ w_hh.T + b_hh  # (B, 4H): [i | f | g | o]
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def gru_cell(x_proj: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """One GRU step. x_proj (B, 3H) = W_ih x + b_ih (precomputed for all steps); h (B, H) -> h'."""
    x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=-1)  # each (B, H)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def is_right_padded(mask: torch.Tensor) -> bool:
    """mask (B, T) bool: every row is real on a non-empty prefix and padding after it."""
    lengths = mask.sum(dim=1)
    prefix = torch.arange(mask.shape[1], device=mask.device) < lengths[:, None]
    return bool((lengths > 0).all()) and bool((prefix == mask).all())


class Recurrent(nn.Module):
    """A stack of LSTM or GRU layers over time, batch first: x (B, T, C) -> outputs (B, T, H), final state.

    ``mask`` (B, T), True for real tokens: a padded step leaves every layer's state unchanged and outputs
    zeros, so the final state is the one after each row's last real token (either padding side).
    """

    def __init__(self, cell: Cell, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 fused: bool = True) -> None:
        super().__init__()
        if cell not in GATES:
            raise ValueError(f"unknown cell {cell!r}; choose lstm or gru")
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.num_layers, self.dropout, self.fused = num_layers, dropout, fused
        rows = GATES[cell] * hidden_size
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(rows, width)))
            self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(rows, hidden_size)))
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(rows)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(rows)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's init: every weight and bias uniform in [-1/sqrt(H), 1/sqrt(H)]."""
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_weights(self, layer: int) -> tuple[torch.Tensor, ...]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer."""
        return tuple(getattr(self, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def zero_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> State:
        """The initial state: zeros, one (num_layers, batch, H) tensor per state (LSTM: h, c; GRU: h)."""
        w = self.weight_hh_l0
        shape = (self.num_layers, batch, self.hidden_size)
        n = 2 if self.cell == "lstm" else 1
        return tuple(torch.zeros(shape, device=device or w.device, dtype=dtype or w.dtype) for _ in range(n))

    def forward(self, x: torch.Tensor, state: State | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """x (B, T, C), state (each (L, B, H); default zeros), mask (B, T) -> outputs (B, T, H), final state."""
        if state is None:
            state = self.zero_state(x.shape[0], x.device, x.dtype)
        if mask is not None:
            mask = mask.bool()
            if bool(mask.all()):
                mask = None
        if self.fused and (mask is None or is_right_padded(mask)):
            return self._fused(x, state, mask)
        return self._loop(x, state, mask)

    def _loop(self, x: torch.Tensor, state: State, mask: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """The equations, one layer after another, one step after another."""
        finals: list[State] = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = nn.functional.dropout(x, self.dropout, self.training)  # between layers, not after the last
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            x_proj = x @ w_ih.T + b_ih  # (B, T, G*H): the input half of every gate, all steps in one matmul
            s = tuple(part[layer] for part in state)  # (h,) or (h, c), each (B, H)
            outputs = []
            for t in range(x.shape[1]):
                new = (gru_cell(x_proj[:, t], s[0], w_hh, b_hh),) if self.cell == "gru" else \
                    lstm_cell(x_proj[:, t], s[0], s[1], w_hh, b_hh)
                if mask is None:
                    s = new
                    outputs.append(s[0])
                else:
                    real = mask[:, t, None]  # (B, 1): a padded step keeps the state and outputs zeros
                    s = tuple(torch.where(real, n, old) for n, old in zip(new, s, strict=True))
                    outputs.append(s[0] * real)
            x = torch.stack(outputs, dim=1)  # (B, T, H)
            finals.append(s)
        return x, tuple(torch.stack(part) for part in zip(*finals, strict=True))

    def _fused(self, x: torch.Tensor, state: State, mask: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """The same parameters through torch's kernel; right padding goes through a packed sequence."""
        weights = [w for layer in range(self.num_layers) for w in self.layer_weights(layer)]
        hx = state if self.cell == "lstm" else state[0]
        kernel = torch.lstm if self.cell == "lstm" else torch.gru
        args = (weights, True, self.num_layers, float(self.dropout), self.training, False)
        if mask is None:
            out, *final = kernel(x, hx, *args, True)  # batch_first
            return out, tuple(final)
        lengths = mask.sum(dim=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        hx = tuple(s.index_select(1, packed.sorted_indices) for s in state)  # into the packed row order
        out, *final = kernel(packed.data, packed.batch_sizes, hx if self.cell == "lstm" else hx[0], *args)
        out, _ = pad_packed_sequence(packed._replace(data=out), batch_first=True, total_length=x.shape[1])
        return out, tuple(s.index_select(1, packed.unsorted_indices) for s in final)

    def extra_repr(self) -> str:
        return (f"{self.cell}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"dropout={self.dropout}, fused={self.fused}")
