"""A recurrent sequence autoencoder: the whole input squeezed into one vector z, then rebuilt from z alone.

Trained as a denoising autoencoder (Vincent et al. 2008; for sentences Hill et al. 2016's SDAE): the
encoder reads a corrupted sequence x~, the decoder must produce the original x (objectives/
denoising_autoencoder.py). Unlike the attention model (models/seq2seq_rnn.py) the decoder never sees the
input's positions: z (B, d_z) is all it gets, so z is a sentence vector (``embed``).

Encoder over x~_1..x~_S (padding masked), L stacked LSTM/GRU layers, bidirectional by default:
    h_fwd = the top layer's final state after the last real token          (B, H)
    h_bwd = the same over the real tokens reversed (bidirectional only)    (B, H)
    z     = W_z [h_fwd ; h_bwd] + b_z                                      (B, d_z)   the bottleneck
Decoder (y_0 = decoder_start_id; teacher forcing feeds y_{t-1} = the previous target):
    s_0^l = tanh(W_init^l z)          l = 1..L (LSTM cells start at 0)
    s_t   = Cell([Dropout(E[y_{t-1}]) ; z], s_{t-1})                      z at every step as well
    logits_t = W_out Dropout(s_t^L)                                        (B, vocab_size)

The interface is T5's / seq2seq-rnn's, so ``generation.seq2seq`` (greedy, sampling, beam) decodes it:

    forward(input_ids, attention_mask=, decoder_input_ids=) -> logits (B, T, V)     teacher forcing
    embed(ids, mask) -> z (B, d_z)                         the sentence vector
    encode(ids, mask) -> memory (B, 1, d_z)                z as a one-position memory
    decode(decoder_input_ids, memory, memory_mask, cache=) -> logits (B, T, V)
    new_cache(batch, max_len) -> AutoencoderCache          the decoder state (filled on the first decode)

The cells are :class:`fromzero.nn.recurrent.Recurrent` (tested equal to torch.nn.LSTM / GRU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.models.seq2seq_rnn import reverse_real
from fromzero.nn import Linear
from fromzero.nn.recurrent import Recurrent, State


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape and choices of a recurrent (denoising) sequence autoencoder. Validated on construction."""

    vocab_size: int = field(8000, help="number of token ids (input and output share one vocabulary)")
    n_embd: int = field(64, help="token embedding width (shared by encoder and decoder)")
    hidden: int = field(256, help="state size of every recurrent layer (per direction in the encoder)")
    d_z: int = field(128, help="bottleneck: the width of the one vector z the decoder sees")
    n_layer: int = field(1, help="recurrent layers in the encoder and in the decoder")
    cell: Literal["lstm", "gru"] = field("gru", help="recurrent cell")
    bidirectional: bool = field(True, help="the encoder also reads the input right to left")
    dropout: float = field(0.1, help="dropout on embeddings, between layers and before the output layer")
    pad_id: int = field(0, help="padding token id")
    eos_id: int = field(1, help="end-of-sequence token id")
    decoder_start_id: int = field(0, help="first decoder input token (as T5: the pad id)")
    max_positions: int = field(64, help="training window (seq_len default); generation keeps this many input tokens")
    fused: bool = field(True, help="run torch's LSTM/GRU kernel on the same weights (false: the readable loop)")

    def __post_init__(self) -> None:
        for key in ("vocab_size", "n_embd", "hidden", "d_z", "n_layer", "max_positions"):
            require(getattr(self, key) > 0, key, f"must be positive, got {getattr(self, key)}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        for key in ("pad_id", "eos_id", "decoder_start_id"):
            value = getattr(self, key)
            require(0 <= value < self.vocab_size, key, f"{value} is not a token id (vocab_size={self.vocab_size})")


@dataclass
class AutoencoderCache:
    """Decoder state between generation steps (set by the first :meth:`TextAutoencoder.decode`)."""

    state: State | None = None  # each (L, B, H)
    length: int = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` (k,) in that order (beam search)."""
        if self.state is not None:
            self.state = tuple(s.index_select(1, index) for s in self.state)


class TextAutoencoder(nn.Module):
    """Recurrent encoder -> z (B, d_z) -> recurrent decoder; see the module docstring."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        c = self.config = config
        H = c.hidden
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.enc_fwd = Recurrent(c.cell, c.n_embd, H, c.n_layer, dropout=c.dropout, fused=c.fused)
        self.enc_bwd = Recurrent(c.cell, c.n_embd, H, c.n_layer, dropout=c.dropout, fused=c.fused) \
            if c.bidirectional else None
        self.to_z = Linear(H * (2 if c.bidirectional else 1), c.d_z)  # W_z
        self.init_state = Linear(c.d_z, c.n_layer * H)  # W_init, all layers at once
        self.decoder = Recurrent(c.cell, c.n_embd + c.d_z, H, c.n_layer, dropout=c.dropout, fused=c.fused)
        self.lm_head = Linear(H, c.vocab_size)  # W_out
        nn.init.normal_(self.tok_emb.weight, std=0.1)

    def embed(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, S) (right or left padded; mask (B, S) True/1 = real, every row with a real token) -> z (B, d_z)."""
        mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
        x = self.drop(self.tok_emb(ids))  # (B, S, C)
        finals = [self.enc_fwd(x, mask=mask)[1][0][-1]]  # (B, H): top layer after the last real token
        if self.enc_bwd is not None:
            rev = reverse_real(mask)[..., None].expand_as(x)  # each row's real tokens reversed in place
            finals.append(self.enc_bwd(x.gather(1, rev), mask=mask)[1][0][-1])
        return self.to_z(torch.cat(finals, dim=-1))

    def embed_token_lists(self, rows: list[list[int]]) -> torch.Tensor:
        """z (N, d_z) of token-id lists of any lengths (right-padded into one batch; eval mode, no grad)."""
        if not rows or any(len(r) == 0 for r in rows):
            raise ValueError("embed_token_lists needs one or more non-empty token lists")
        width = max(len(r) for r in rows)
        device = self.lm_head.weight.device
        ids = torch.tensor([r + [self.config.pad_id] * (width - len(r)) for r in rows], device=device)
        mask = torch.tensor([[True] * len(r) + [False] * (width - len(r)) for r in rows], device=device)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.embed(ids, mask)
        finally:
            self.train(was_training)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, S) -> memory (B, 1, d_z): z as the one position a seq2seq decoder loop passes back."""
        return self.embed(input_ids, attention_mask)[:, None]

    def initial_state(self, z: torch.Tensor) -> State:
        """s_0 = tanh(W_init z) -> each (L, B, H) (LSTM: c_0 = 0)."""
        c = self.config
        h = torch.tanh(self.init_state(z)).view(-1, c.n_layer, c.hidden).transpose(0, 1).contiguous()
        return (h, torch.zeros_like(h)) if c.cell == "lstm" else (h,)

    def new_cache(self, batch: int, max_len: int | None = None, device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None) -> AutoencoderCache:
        """An empty decoder cache (T5's arguments; a recurrent state does not grow)."""
        return AutoencoderCache()

    def decode(self, decoder_input_ids: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None,
               *, decoder_attention_mask: torch.Tensor | None = None,
               cache: AutoencoderCache | None = None) -> torch.Tensor:
        """decoder_input_ids (B, T) given memory (B, 1, d_z) -> logits (B, T, vocab_size).

        With a cache the tokens continue from its state. The masks are accepted for T5's interface and unused:
        targets are right-padded and a recurrent decoder only looks back."""
        z = memory[:, 0]  # (B, d_z)
        state = self.initial_state(z) if cache is None or cache.state is None else cache.state
        e = self.drop(self.tok_emb(decoder_input_ids))  # (B, T, C)
        steps = torch.cat([e, z[:, None].expand(-1, e.shape[1], -1)], dim=-1)  # (B, T, C + d_z)
        out, state = self.decoder(steps, state)  # (B, T, H)
        if cache is not None:
            cache.state = state
            cache.length += decoder_input_ids.shape[1]
        return self.lm_head(self.drop(out))

    def forward(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor, decoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode input_ids (B, S) to z, decode decoder_input_ids (B, T) (teacher forcing) -> logits (B, T, V)."""
        return self.decode(decoder_input_ids, self.encode(input_ids, attention_mask))


register_family("autoencoder", AutoencoderConfig, TextAutoencoder)


@register_model("autoencoder-char-small")
def autoencoder_char_small() -> AutoencoderConfig:
    """Bidirectional GRU encoder, GRU decoder, 256 wide, z of 128, 64-token windows; vocab from the tokenizer
    (a character vocabulary is ~100): the text denoising autoencoder of recipes/autoencoder_text.yaml."""
    return AutoencoderConfig(vocab_size=128, n_embd=64, hidden=256, d_z=128, n_layer=1, cell="gru",
                             bidirectional=True, max_positions=64)
