"""A recurrent model's decoding cache: its state, one slot (row) per sequence.

What a Transformer keeps of its past is every key and value (``KVCache``, growing with the sequence); what
an RNN keeps is its state, a fixed size whatever the length: LSTM (h, c), GRU (h), each (num_layers, slots,
H). This class offers what ``generation.BatchDecoder`` asks of a cache (``rows``, ``copy_row``, ``keys``),
so a recurrent language model decodes through the same batch decoder as GPT.
"""

from __future__ import annotations

import torch


class RecurrentCache:
    """The state of ``slots`` sequences: ``states`` each (num_layers, slots, H); rows are sequences."""

    def __init__(self, states: tuple[torch.Tensor, ...]) -> None:
        self.states = states

    @classmethod
    def zeros(cls, n_states: int, num_layers: int, slots: int, hidden: int, *, device: torch.device | str | None,
              dtype: torch.dtype | None) -> RecurrentCache:
        """An all-zero state for ``slots`` sequences (``n_states``: 2 for an LSTM, 1 for a GRU)."""
        return cls(tuple(torch.zeros(num_layers, slots, hidden, device=device, dtype=dtype) for _ in range(n_states)))

    @property
    def batch(self) -> int:
        return self.states[0].shape[1]

    @property
    def keys(self) -> tuple[torch.Tensor, ...]:
        """The state tensors (the batch decoder reads ``keys[0].dtype`` for the attention mask it passes to
        a decode step; a recurrent step ignores that mask: each row's state is its whole past)."""
        return self.states

    def read(self, n: int) -> tuple[torch.Tensor, ...]:
        """The state of rows [0, n): each (num_layers, n, H) (views)."""
        return tuple(s[:, :n] for s in self.states)

    def write(self, state: tuple[torch.Tensor, ...]) -> None:
        """Store a new state for rows [0, n), n = its batch size."""
        n = state[0].shape[1]
        for slot, new in zip(self.states, state, strict=True):
            slot[:, :n].copy_(new)

    def rows(self, start: int, end: int) -> RecurrentCache:
        """Rows [start, end) as a cache of their own that shares this one's memory (writes land here)."""
        return RecurrentCache(tuple(s[:, start:end] for s in self.states))

    def copy_row(self, src: int, dst: int, length: int | None = None) -> None:
        """Copy row ``src``'s state into row ``dst`` (``length`` is a KV-cache argument: a state has none)."""
        for s in self.states:
            s[:, dst].copy_(s[:, src])
