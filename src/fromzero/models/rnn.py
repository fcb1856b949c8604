"""A recurrent language model (LSTM or GRU): the classic baseline the Transformer replaced, in one file.

    x_t = Dropout(E[token_t])                          token embedding
    h_t^l = Cell_l(h_{t-1}^l, h_t^{l-1})               l = 1..L, Dropout between layers (h_t^0 = x_t)
    logits_t = W_out Dropout(h_t^L) + b_out            output projection (tied to E when n_embd == hidden)

Dropout on the non-recurrent connections only, as Zaremba et al. 2014 ("Recurrent neural network
regularization"); tied input and output embeddings as Press & Wolf 2017 / Inan et al. 2017. The cells and
the stack are ``fromzero.nn.recurrent`` (written from the equations; ``fused`` runs torch's kernel on the
same parameters). ``forward(input_ids) -> logits (B, T, V)``, so the causal-LM pretraining task, ``eval``
and ``generate`` use it unchanged; generation keeps each row's state in a :class:`RecurrentCache` instead
of keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.nn import Linear
from fromzero.nn.recurrent import Recurrent, State
from fromzero.nn.recurrent_cache import RecurrentCache


@dataclass(frozen=True)
class RNNConfig:
    """Shape and choices of a recurrent language model. Validated on construction."""

    vocab_size: int = field(128, help="number of token ids (the tokenizer's vocabulary size)")
    block_size: int = field(128, help="context: training window length and generation window (an RNN has no "
                                      "hard limit; a longer window slides as GPT's does)")
    n_embd: int = field(128, help="token embedding width")
    hidden: int = field(256, help="hidden (state) size of every recurrent layer")
    n_layer: int = field(2, help="number of stacked recurrent layers")
    cell: Literal["lstm", "gru"] = field("lstm", help="recurrent cell")
    dropout: float = field(0.0, help="dropout on embeddings, between layers and before the output layer")
    tie_weights: bool = field(False, help="share the token embedding with the output projection "
                                          "(needs n_embd == hidden)")
    fused: bool = field(True, help="run torch's LSTM/GRU kernel on the same weights (false: the readable "
                                   "step-by-step loop; equal results, slower)")

    def __post_init__(self) -> None:
        for key in ("vocab_size", "block_size", "n_embd", "hidden", "n_layer"):
            require(getattr(self, key) > 0, key, f"must be positive, got {getattr(self, key)}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(not self.tie_weights or self.n_embd == self.hidden, "tie_weights",
                f"tied weights need n_embd == hidden (got {self.n_embd} and {self.hidden}); set model.n_embd="
                f"{self.hidden} or tie_weights: false")


class RNNLM(nn.Module):
    """Recurrent language model. ``forward(input_ids) -> logits (B, T, vocab_size)``."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = Recurrent(c.cell, c.n_embd, c.hidden, c.n_layer, dropout=c.dropout, fused=c.fused)
        self.lm_head = Linear(c.hidden, c.vocab_size)
        nn.init.uniform_(self.tok_emb.weight, -0.1, 0.1)  # Zaremba et al.'s range; the cells keep torch's init
        nn.init.uniform_(self.lm_head.weight, -0.1, 0.1)
        nn.init.zeros_(self.lm_head.bias)
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight

    @property
    def hidden_size(self) -> int:
        """Width of :meth:`hidden_states` (what a task head reads)."""
        return self.config.hidden

    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
            state: State | None = None) -> tuple[torch.Tensor, State]:
        """input_ids (B, T) -> top layer outputs (B, T, H) and the final state (each (L, B, H))."""
        x = self.drop(self.tok_emb(input_ids))  # (B, T, C)
        return self.rnn(x, state, attention_mask)

    def hidden_states(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> top layer outputs (B, T, H). attention_mask (B, T), 1 = real: a padded position
        leaves the state unchanged and outputs zeros, so the last real position carries the sequence."""
        return self.run(input_ids, attention_mask)[0]

    def forward(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> logits (B, T, vocab_size). See :meth:`hidden_states`."""
        return self.lm_head(self.drop(self.hidden_states(input_ids, attention_mask=attention_mask)))

    # -- generation: the state is the cache ---------------------------------------------------------------
    def new_cache(self, batch: int, max_len: int | None = None, device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None) -> RecurrentCache:
        """A zero state for ``batch`` sequences (``max_len`` is a KV-cache argument: a state has a fixed size)."""
        weight = self.tok_emb.weight
        return RecurrentCache.zeros(2 if self.config.cell == "lstm" else 1, self.config.n_layer, batch,
                                    self.config.hidden, device=device or weight.device, dtype=dtype or weight.dtype)

    def prefill(self, input_ids: torch.Tensor, lengths: torch.Tensor,
                cache: RecurrentCache | None = None) -> torch.Tensor:
        """Right-padded prompts input_ids (k, T), row r real in [0, lengths[r]) -> next-token logits (k, V).

        The cache's rows [0, k) get each row's state after its last real token (from zero: a fresh start)."""
        T = input_ids.shape[1]
        mask = torch.arange(T, device=input_ids.device) < lengths[:, None]  # (k, T)
        out, state = self.run(input_ids, mask)
        if cache is not None:
            cache.write(state)
        last = out[torch.arange(out.shape[0], device=out.device), lengths - 1]  # (k, H)
        return self.lm_head(last)

    def decode_step(self, tokens: torch.Tensor, positions: torch.Tensor, cache: RecurrentCache, span: int,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
        """One new token for each of the cache's rows [0, n) -> logits (n, V); the state advances in place.

        ``positions``, ``span`` and ``bias`` are GPT's decode-step arguments: a row's state is its whole past,
        so a recurrent step needs none of them."""
        out, state = self.run(tokens[:, None], state=cache.read(tokens.shape[0]))  # (n, 1, H)
        cache.write(state)
        return self.lm_head(out[:, 0])


register_family("rnn", RNNConfig, RNNLM)


@register_model("lstm-char-small")
def lstm_char_small() -> RNNConfig:
    """Character-level LSTM: 2 layers of 256, 128-wide embeddings (~0.97M parameters with 128 tokens)."""
    return RNNConfig(vocab_size=128, block_size=128, n_embd=128, hidden=256, n_layer=2, cell="lstm")


@register_model("gru-char-small")
def gru_char_small() -> RNNConfig:
    """Character-level GRU: 2 layers of 256, 128-wide embeddings (~0.74M parameters with 128 tokens)."""
    return RNNConfig(vocab_size=128, block_size=128, n_embd=128, hidden=256, n_layer=2, cell="gru")
