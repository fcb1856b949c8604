"""An RNN encoder-decoder with additive attention (Bahdanau et al. 2014): the classic translation model.

Encoder, over the source x_1..x_S (padding masked), L layers, each bidirectional by default:
    h_j = [fwd_j ; bwd_j]          fwd reads the real tokens left to right, bwd right to left     (B, S, M)
    M = hidden * (2 if bidirectional else 1); Dropout between layers, h_j = 0 at padding
Decoder state init (Nematus, Sennrich et al. 2017: the mean annotation):
    s_0^l = tanh(W_init^l mean_j h_j)   l = 1..L;  LSTM cells start at 0
Decoder, step t (y_0 = decoder_start_id; teacher forcing feeds y_{t-1} = the previous target):
    e_t = Dropout(E[y_{t-1}])
    c_t, a_t = Attn(s_{t-1}^L, h, mask)                 additive attention on the top layer's state
    s_t = Cell([e_t ; c_t], s_{t-1})                    L stacked LSTM/GRU layers
    o_t = Dropout(tanh(W_o [s_t^L ; c_t ; e_t]))        "deep output" (Bahdanau's, tanh for the maxout)
    logits_t = W_out o_t                                (B, vocab_size)

The attention is :class:`fromzero.nn.additive_attention.AdditiveAttention`, the cells
``fromzero.nn.recurrent``. The interface is T5's (``fromzero.models.t5``), so the seq2seq objective,
``generation.seq2seq`` and the finetune seq2seq task use it unchanged:

    forward(input_ids, attention_mask=, decoder_input_ids=) -> logits (B, T, V)   teacher forcing
    encode(input_ids, attention_mask) -> memory (B, S, M)
    decode(decoder_input_ids, memory, memory_mask, cache=) -> logits (B, T, V)
    new_cache(batch, max_len) -> Seq2SeqRNNCache   (the decoder state; filled on the first decode)

Teacher forcing runs the very same step function as decoding (the attention at step t needs s_{t-1}, so
the decoder is a loop either way); tests/models/test_seq2seq_rnn.py checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.nn import Linear
from fromzero.nn.additive_attention import AdditiveAttention
from fromzero.nn.recurrent import Recurrent, State


@dataclass(frozen=True)
class Seq2SeqRNNConfig:
    """Shape and choices of an RNN encoder-decoder with attention. Validated on construction."""

    vocab_size: int = field(8000, help="number of token ids (one vocabulary shared by source and target)")
    n_embd: int = field(128, help="token embedding width (shared by encoder and decoder)")
    hidden: int = field(256, help="state size of every recurrent layer (per direction in the encoder)")
    n_layer: int = field(1, help="recurrent layers in the encoder and in the decoder")
    cell: Literal["lstm", "gru"] = field("gru", help="recurrent cell")
    bidirectional: bool = field(True, help="encoder reads the source both ways (annotations 2 * hidden wide)")
    attn_dim: int | None = field(None, help="width of the attention's hidden layer (null = hidden)")
    dropout: float = field(0.1, help="dropout on embeddings, between layers and on the deep output")
    pad_id: int = field(0, help="padding token id")
    eos_id: int = field(1, help="end-of-sequence token id")
    decoder_start_id: int = field(0, help="first decoder input token (as T5: the pad id)")
    max_positions: int = field(512, help="soft length limit: generation keeps the first max_positions input tokens")
    fused: bool = field(True, help="run torch's LSTM/GRU kernel on the same weights (false: the readable loop)")

    def __post_init__(self) -> None:
        for key in ("vocab_size", "n_embd", "hidden", "n_layer", "max_positions"):
            require(getattr(self, key) > 0, key, f"must be positive, got {getattr(self, key)}")
        require(self.attn_dim is None or self.attn_dim > 0, "attn_dim", f"must be positive or null, got "
                f"{self.attn_dim}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        for key in ("pad_id", "eos_id", "decoder_start_id"):
            value = getattr(self, key)
            require(0 <= value < self.vocab_size, key, f"{value} is not a token id (vocab_size={self.vocab_size})")

    @property
    def memory_dim(self) -> int:
        """Width M of the encoder's annotations."""
        return self.hidden * (2 if self.bidirectional else 1)


@dataclass
class Seq2SeqRNNCache:
    """Decoder state between steps: the recurrent state and the attention's projected keys (set on first use)."""

    state: State | None = None  # each (L, B, H)
    projected_keys: torch.Tensor | None = None  # (B, S, A)
    length: int = 0  # decoder positions already processed

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` (k,) in that order (beam search: each hypothesis continues its parent's state)."""
        if self.state is not None:
            self.state = tuple(s.index_select(1, index) for s in self.state)
        if self.projected_keys is not None:
            self.projected_keys = self.projected_keys.index_select(0, index)


def reverse_real(mask: torch.Tensor) -> torch.Tensor:
    """mask (B, S) bool -> index (B, S) reversing each row's real positions in place (padding stays put).

    Its own inverse: gathering with it twice is the identity."""
    S = mask.shape[1]
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # real positions first, in order
    n = mask.sum(dim=1, keepdim=True)  # (B, 1)
    j = torch.arange(S, device=mask.device)[None, :]
    partner = order.gather(1, torch.where(j < n, n - 1 - j, j))  # real rank r <-> rank n-1-r
    return torch.empty_like(order).scatter_(1, order, partner)


class Seq2SeqRNN(nn.Module):
    """RNN encoder-decoder with additive attention: ``forward(input_ids, decoder_input_ids=...) -> logits``."""

    def __init__(self, config: Seq2SeqRNNConfig) -> None:
        super().__init__()
        c = self.config = config
        M, H = c.memory_dim, c.hidden
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.enc_fwd = nn.ModuleList(Recurrent(c.cell, c.n_embd if i == 0 else M, H, fused=c.fused)
                                     for i in range(c.n_layer))
        self.enc_bwd = nn.ModuleList(Recurrent(c.cell, c.n_embd if i == 0 else M, H, fused=c.fused)
                                     for i in range(c.n_layer if c.bidirectional else 0))
        self.init_state = Linear(M, c.n_layer * H)  # W_init, all layers at once
        self.attn = AdditiveAttention(H, M, c.attn_dim or H)
        self.decoder = Recurrent(c.cell, c.n_embd + M, H, c.n_layer, dropout=c.dropout, fused=c.fused)
        self.deep_out = Linear(H + M + c.n_embd, H)  # W_o
        self.lm_head = Linear(H, c.vocab_size)  # W_out
        nn.init.normal_(self.tok_emb.weight, std=0.1)

    # -- encoder --------------------------------------------------------------------------------------------
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, S) -> annotations (B, S, M), zero at padding. attention_mask (B, S): True/1 = real."""
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        x = self.drop(self.tok_emb(input_ids))  # (B, S, C)
        rev = reverse_real(mask)[..., None] if self.config.bidirectional else None  # (B, S, 1)
        for i, fwd in enumerate(self.enc_fwd):
            if i > 0:
                x = self.drop(x)
            out = fwd(x, mask=mask)[0]  # (B, S, H)
            if rev is not None:  # backward: run forward over each row's real tokens reversed, then undo it
                back = self.enc_bwd[i](x.gather(1, rev.expand_as(x)), mask=mask)[0]
                out = torch.cat([out, back.gather(1, rev.expand_as(back))], dim=-1)  # (B, S, 2H)
            x = out * mask[..., None]
        return x

    def initial_state(self, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> State:
        """s_0 = tanh(W_init mean_j h_j) over the real positions -> each (L, B, H) (LSTM: c_0 = 0)."""
        c = self.config
        if memory_mask is None:
            mean = memory.mean(dim=1)
        else:
            m = memory_mask.to(memory.dtype)[..., None]  # (B, S, 1)
            mean = (memory * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
        h = torch.tanh(self.init_state(mean)).view(-1, c.n_layer, c.hidden).transpose(0, 1).contiguous()
        return (h, torch.zeros_like(h)) if c.cell == "lstm" else (h,)

    # -- decoder --------------------------------------------------------------------------------------------
    def step(self, tokens: torch.Tensor, state: State, memory: torch.Tensor, projected_keys: torch.Tensor,
             memory_mask: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """One decoder step: previous tokens (B,), state s_{t-1} -> logits (B, V) and s_t."""
        e = self.drop(self.tok_emb(tokens))  # (B, C)
        context, _ = self.attn(state[0][-1], memory, memory_mask, projected_keys=projected_keys)  # (B, M)
        out, state = self.decoder(torch.cat([e, context], dim=-1)[:, None], state)  # (B, 1, H)
        o = self.drop(torch.tanh(self.deep_out(torch.cat([out[:, 0], context, e], dim=-1))))  # (B, H)
        return self.lm_head(o), state

    def new_cache(self, batch: int, max_len: int | None = None, device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None) -> Seq2SeqRNNCache:
        """An empty decoder cache (``batch``, ``max_len`` and the rest are T5's arguments: a state grows not);
        the first :meth:`decode` fills it from the memory."""
        return Seq2SeqRNNCache()

    def decode(self, decoder_input_ids: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None,
               *, decoder_attention_mask: torch.Tensor | None = None,
               cache: Seq2SeqRNNCache | None = None) -> torch.Tensor:
        """decoder_input_ids (B, T) over memory (B, S, M) -> logits (B, T, vocab_size).

        With a cache the tokens continue from its state. ``decoder_attention_mask`` is accepted for T5's
        interface and unused: targets are right-padded and a recurrent decoder only looks back."""
        if memory_mask is not None:
            memory_mask = memory_mask.bool()
        fresh = cache is None or cache.state is None
        state = self.initial_state(memory, memory_mask) if fresh else cache.state
        keys = self.attn.project_keys(memory) if cache is None or cache.projected_keys is None \
            else cache.projected_keys  # (B, S, A), once per source batch
        logits = []
        for t in range(decoder_input_ids.shape[1]):
            step_logits, state = self.step(decoder_input_ids[:, t], state, memory, keys, memory_mask)
            logits.append(step_logits)
        if cache is not None:
            cache.state, cache.projected_keys = state, keys
            cache.length += decoder_input_ids.shape[1]
        return torch.stack(logits, dim=1)  # (B, T, V)

    def forward(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor, decoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode input_ids (B, S), decode decoder_input_ids (B, T) (teacher forcing) -> logits (B, T, V)."""
        memory = self.encode(input_ids, attention_mask)
        return self.decode(decoder_input_ids, memory, attention_mask, decoder_attention_mask=decoder_attention_mask)


register_family("seq2seq-rnn", Seq2SeqRNNConfig, Seq2SeqRNN)


@register_model("seq2seq-rnn-small")
def seq2seq_rnn_small() -> Seq2SeqRNNConfig:
    """Bidirectional GRU encoder and GRU decoder, 1 layer of 256, 128-wide embeddings, 8000 tokens (T5-tiny's
    vocabulary): the attention baseline of the translation table."""
    return Seq2SeqRNNConfig(vocab_size=8000, n_embd=128, hidden=256, n_layer=1, cell="gru", bidirectional=True)
