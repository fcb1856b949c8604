"""T5: an encoder-decoder Transformer with relative position bias, in one file.

Encoder (bidirectional self-attention, padding masked), for l = 1..L:
    a_l = h_{l-1} + SelfAttn(N(h_{l-1}); B_enc)        h_0 = Dropout(E[x])
    h_l = a_l + FFN(N(a_l))                            memory m = Dropout(N(h_L))
Decoder (causal self-attention), over y_<t:
    a_l = g_{l-1} + CausalSelfAttn(N(g_{l-1}); B_dec)  g_0 = Dropout(E[y_<t])
    c_l = a_l + CrossAttn(N(a_l), m)
    g_l = c_l + FFN(N(c_l))                            out = Dropout(N(g_L))
Output:
    logits = (out * d_model^-0.5) E^T    tied (T5 v1.0)
    logits = out W_out^T                 untied (T5 v1.1)

N is RMSNorm without bias ("T5LayerNorm"), every linear layer has no bias,
attention logits are not scaled by 1/sqrt(d_kv) (the init accounts for it) and
get a learned relative position bias B: one table per stack, computed once
and shared by all its layers (T5 keeps it in the stack's first layer). The inner attention width n_head * d_kv
may differ from d_model. The FFN is ReLU (v1.0) or gated GELU (v1.1,
Shazeer 2020). Dropout follows T5: on the embeddings, attention
probabilities, inside the FFN, on every residual branch and after the final
norm. The decoder starts from ``decoder_start_id`` (T5: the pad id).

References: Raffel et al. 2019, "Exploring the Limits of Transfer Learning with
a Unified Text-to-Text Transformer", https://arxiv.org/abs/1910.10683;
Shaw et al. 2018 (relative positions), https://arxiv.org/abs/1803.02155;
Shazeer 2020, "GLU Variants Improve Transformer", https://arxiv.org/abs/2002.05202.

Module names and Hugging Face ``T5ForConditionalGeneration`` (i = block index):

    tok_emb                            shared (= encoder/decoder.embed_tokens)
    {encoder,decoder}.rel_bias.weight  {encoder,decoder}.block.0.layer.0.SelfAttention.relative_attention_bias
    encoder.blocks.i.norm1 / attn      encoder.block.i.layer.0.layer_norm / SelfAttention
      attn.qkv = [q; k; v], attn.proj    ....SelfAttention.{q,k,v} / o
    encoder.blocks.i.norm2 / mlp       encoder.block.i.layer.1.layer_norm / DenseReluDense
      mlp.fc / proj (relu)               ....DenseReluDense.wi / wo
      mlp.gate / up / proj (gated)       ....DenseReluDense.wi_0 / wi_1 / wo
    decoder.blocks.i.norm1 / attn      decoder.block.i.layer.0.layer_norm / SelfAttention
    decoder.blocks.i.norm_cross        decoder.block.i.layer.1.layer_norm
    decoder.blocks.i.cross_attn        decoder.block.i.layer.1.EncDecAttention
      cross_attn.q / kv = [k; v] / proj  ....EncDecAttention.q / {k,v} / o
    decoder.blocks.i.norm2 / mlp       decoder.block.i.layer.2.layer_norm / DenseReluDense
    {encoder,decoder}.norm_f           {encoder,decoder}.final_layer_norm
    lm_head                            lm_head (tied to tok_emb when tie_weights)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.nn import (
    Block,
    CrossAttention,
    CrossKVCache,
    KVCache,
    Linear,
    RelativePositionBias,
    RMSNorm,
    SelfAttention,
    build_attention_mask,
)


@dataclass(frozen=True)
class T5Config:
    """Shape and choices of a T5 model. Validated on construction."""

    vocab_size: int = field(32128, help="number of token ids (the tokenizer's vocabulary, sentinels included)")
    n_layer: int = field(6, help="number of encoder blocks")
    n_decoder_layer: int | None = field(None, help="number of decoder blocks (null = n_layer)")
    n_head: int = field(8, help="number of attention heads")
    d_model: int = field(512, help="model width")
    d_kv: int = field(64, help="width of each attention head; n_head * d_kv may differ from d_model")
    d_ff: int = field(2048, help="hidden size of the feed-forward network")
    ffn: Literal["relu", "gated-gelu"] = field("relu", help="feed-forward type: relu (T5) or gated-gelu (T5 v1.1)")
    dropout: float = field(0.1, help="dropout on embeddings, attention, FFN and residual branches")
    norm_eps: float = field(1e-6, help="epsilon of the RMSNorm layers")
    rel_buckets: int = field(32, help="number of relative position buckets")
    rel_max_distance: int = field(128, help="offsets at least this far apart share the last bucket")
    tie_weights: bool = field(True, help="output projection = token embedding, outputs scaled by d_model^-0.5")
    pad_id: int = field(0, help="padding token id")
    eos_id: int = field(1, help="end-of-sequence token id")
    decoder_start_id: int = field(0, help="first decoder input token (T5 uses the pad id)")
    max_positions: int = field(512, help="soft length limit: default KV cache size and generation input limit")
    init_factor: float = field(1.0, help="multiplies every init std (Hugging Face's initializer_factor)")

    def __post_init__(self) -> None:
        for key in ("vocab_size", "n_layer", "n_head", "d_model", "d_kv", "d_ff", "max_positions"):
            value = getattr(self, key)
            require(value > 0, key, f"must be positive, got {value}")
        require(self.n_decoder_layer is None or self.n_decoder_layer > 0, "n_decoder_layer",
                f"must be positive or null (= n_layer), got {self.n_decoder_layer}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.norm_eps > 0, "norm_eps", "must be positive")
        require(self.rel_buckets >= 4 and self.rel_buckets % 2 == 0, "rel_buckets",
                f"must be an even number >= 4, got {self.rel_buckets}")
        require(self.rel_max_distance > self.rel_buckets // 2, "rel_max_distance",
                f"must exceed rel_buckets / 2 = {self.rel_buckets // 2}, got {self.rel_max_distance}")
        for key in ("pad_id", "eos_id", "decoder_start_id"):
            value = getattr(self, key)
            require(0 <= value < self.vocab_size, key, f"{value} is not a token id (vocab_size={self.vocab_size})")
        require(self.init_factor > 0, "init_factor", "must be positive")

    @property
    def n_dec_layer(self) -> int:
        return self.n_decoder_layer or self.n_layer


class ReLUFFN(nn.Module):
    """T5's FFN:  proj(Dropout(ReLU(fc x)))  (Hugging Face ``T5DenseActDense``: wi, wo)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc = Linear(dim, hidden, bias=False)
        self.proj = Linear(hidden, dim, bias=False)
        self.inner_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.inner_dropout(F.relu(self.fc(x)))))


class GatedGELUFFN(nn.Module):
    """T5 v1.1's FFN (GEGLU):  proj(Dropout(GELU_tanh(gate x) * (up x)))  (wi_0, wi_1, wo)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate = Linear(dim, hidden, bias=False)
        self.up = Linear(dim, hidden, bias=False)
        self.proj = Linear(hidden, dim, bias=False)
        self.inner_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.gate(x), approximate="tanh") * self.up(x)
        return self.dropout(self.proj(self.inner_dropout(h)))


@dataclass
class T5Cache:
    """Decoder state for incremental decoding: self-attention keys/values and the memory's keys/values.

    ``position_bias`` is the decoder's relative bias for every (query, key) pair the cache can hold,
    (1, H, max_len, max_len), computed on first use: each step slices its row instead of recomputing
    buckets (the same values: a bucket depends only on the offset).
    """

    self_attn: KVCache
    cross: CrossKVCache
    position_bias: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Decoder positions already processed."""
        return self.self_attn.length

    def reorder(self, index: torch.Tensor) -> None:
        """Row i continues old row ``index[i]`` (B,): beam search moves each hypothesis's state with it."""
        self.self_attn.reorder(index)
        self.cross.reorder(index)


class T5Stack(nn.Module):
    """Encoder or decoder: pre-norm blocks sharing one relative position bias, then a final RMSNorm."""

    def __init__(self, c: T5Config, n_layer: int, decoder: bool) -> None:
        super().__init__()
        self.rel_bias = RelativePositionBias(c.n_head, c.rel_buckets, c.rel_max_distance, bidirectional=not decoder)
        self.blocks = nn.ModuleList(self._block(c, decoder) for _ in range(n_layer))
        self.norm_f = RMSNorm(c.d_model, c.norm_eps)
        self.drop = nn.Dropout(c.dropout)

    @staticmethod
    def _block(c: T5Config, decoder: bool) -> Block:
        attn = SelfAttention(c.d_model, c.n_head, causal=decoder, bias=False, dropout=c.dropout, head_dim=c.d_kv,
                             scale=1.0)
        ffn = ReLUFFN if c.ffn == "relu" else GatedGELUFFN
        cross = None
        if decoder:
            cross = CrossAttention(c.d_model, c.n_head, head_dim=c.d_kv, bias=False, dropout=c.dropout, scale=1.0)
        return Block(attn, ffn(c.d_model, c.d_ff, c.dropout), RMSNorm(c.d_model, c.norm_eps),
                     RMSNorm(c.d_model, c.norm_eps), pre_norm=True, cross_attn=cross,
                     norm_cross=RMSNorm(c.d_model, c.norm_eps) if decoder else None)

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None, memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, cache: T5Cache | None = None) -> torch.Tensor:
        """Embedded tokens x (B, T, C) -> hidden states (B, T, C); the cache (decoder only) advances by T."""
        T = x.shape[1]
        past = cache.length if cache is not None else 0
        if cache is None:
            bias = self.rel_bias(T, T)  # (1, H, T, T), shared by every layer
        else:
            if cache.position_bias is None:
                size = cache.self_attn.max_len
                cache.position_bias = self.rel_bias(size, size)
            bias = cache.position_bias[:, :, past:past + T, :past + T]  # (1, H, T, past + T)
        self_cache = cache.self_attn if cache is not None else None
        cross_cache = cache.cross if cache is not None else None
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, mask=mask, position_bias=bias, cache=self_cache, layer=i, memory=memory,
                      memory_mask=memory_mask, cross_cache=cross_cache)
        if self_cache is not None:
            self_cache.advance(T)
        return self.drop(self.norm_f(x))


class T5(nn.Module):
    """Encoder-decoder model: ``forward(input_ids, decoder_input_ids=...) -> logits (B, T, vocab_size)``."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder = T5Stack(c, c.n_layer, decoder=False)
        self.decoder = T5Stack(c, c.n_dec_layer, decoder=True)
        self.lm_head = Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Mesh TensorFlow / Hugging Face T5 init, each std times ``init_factor``.

        Embeddings N(0, 1); in attention, W_q N(0, (d_model * d_kv)^-1/2)
        (standing in for the missing 1/sqrt(d_kv) scaling), W_k and W_v
        N(0, d_model^-1/2), W_o N(0, (n_head * d_kv)^-1/2); FFN input layers
        N(0, d_model^-1/2), output layer N(0, d_ff^-1/2); relative bias
        N(0, d_model^-1/2); norm weights 1. An untied output layer gets Mesh
        TF's dense default N(0, d_model^-1/2), so initial logits are O(1);
        Hugging Face draws it from N(0, 1), which gives logits of std ~sqrt(d_model).
        """
        c, f = self.config, self.config.init_factor
        d, inner = c.d_model, c.n_head * c.d_kv
        nn.init.normal_(self.tok_emb.weight, std=f)
        if not c.tie_weights:
            nn.init.normal_(self.lm_head.weight, std=f * d**-0.5)
        for stack in (self.encoder, self.decoder):
            nn.init.normal_(stack.rel_bias.weight, std=f * d**-0.5)
            for block in stack.blocks:
                w = block.attn.qkv.weight  # rows [q; k; v]
                nn.init.normal_(w[:inner], std=f * (d * c.d_kv) ** -0.5)
                nn.init.normal_(w[inner:], std=f * d**-0.5)
                nn.init.normal_(block.attn.proj.weight, std=f * inner**-0.5)
                if block.cross_attn is not None:
                    nn.init.normal_(block.cross_attn.q.weight, std=f * (d * c.d_kv) ** -0.5)
                    nn.init.normal_(block.cross_attn.kv.weight, std=f * d**-0.5)
                    nn.init.normal_(block.cross_attn.proj.weight, std=f * inner**-0.5)
                for name in ("fc", "gate", "up"):
                    if hasattr(block.mlp, name):
                        nn.init.normal_(getattr(block.mlp, name).weight, std=f * d**-0.5)
                nn.init.normal_(block.mlp.proj.weight, std=f * c.d_ff**-0.5)
        for module in self.modules():
            if isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)

    def new_cache(self, batch: int, max_len: int | None = None, device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None) -> T5Cache:
        """An empty decoder cache for ``batch`` rows of up to ``max_len`` (default max_positions) decoder tokens.

        The cross-attention half fills on the first :meth:`decode` call, so one
        cache serves one encoded batch.
        """
        c, weight = self.config, self.tok_emb.weight
        heads = [block.attn.n_head for block in self.decoder.blocks]  # per layer: structured pruning may differ
        kv = KVCache(c.n_dec_layer, batch, heads, c.d_kv, max_len or c.max_positions,
                     dtype=dtype or weight.dtype, device=device or weight.device)
        return T5Cache(kv, CrossKVCache(c.n_dec_layer))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, S) -> memory (B, S, d_model). attention_mask (B, S): True/1 for real tokens."""
        S = input_ids.shape[1]
        mask = None
        if attention_mask is not None:
            mask = build_attention_mask(attention_mask.bool(), S, S, causal=False, device=input_ids.device)
        return self.encoder(self.tok_emb(input_ids), mask=mask)

    def decode(self, decoder_input_ids: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None,
               *, decoder_attention_mask: torch.Tensor | None = None, cache: T5Cache | None = None) -> torch.Tensor:
        """decoder_input_ids (B, T) over memory (B, S, C) -> logits (B, T, vocab_size).

        memory_mask (B, S): True/1 for the memory's real tokens. With a cache the
        tokens continue after the cached positions (relative positions included),
        the memory's keys/values are projected on the first call only, and
        decoder_attention_mask, if given, covers all cached + T positions.
        """
        T = decoder_input_ids.shape[1]
        past = cache.length if cache is not None else 0
        mask = cross = None
        if decoder_attention_mask is not None:
            mask = build_attention_mask(decoder_attention_mask.bool(), T, past + T, causal=True,
                                        device=decoder_input_ids.device)
        if memory_mask is not None:
            cross = memory_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
        h = self.decoder(self.tok_emb(decoder_input_ids), mask=mask, memory=memory, memory_mask=cross, cache=cache)
        if self.config.tie_weights:  # Mesh TF rescales before the tied output projection
            h = h * self.config.d_model**-0.5
        return self.lm_head(h)

    def forward(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor, decoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode input_ids (B, S), decode decoder_input_ids (B, T) -> logits (B, T, vocab_size)."""
        memory = self.encode(input_ids, attention_mask)
        return self.decode(decoder_input_ids, memory, attention_mask, decoder_attention_mask=decoder_attention_mask)


def shift_right(labels: torch.Tensor, decoder_start_id: int, pad_id: int, ignore_index: int = -100) -> torch.Tensor:
    """Teacher-forcing decoder inputs: [start, y_1, ..., y_{T-1}], with ignored labels replaced by pad_id."""
    shifted = labels.new_full(labels.shape, decoder_start_id)
    shifted[..., 1:] = labels[..., :-1]
    return shifted.masked_fill_(shifted == ignore_index, pad_id)


register_family("t5", T5Config, T5)


@register_model("t5-tiny")
def t5_tiny() -> T5Config:
    """2 + 2 layers, d_model 128, 4 heads of 32, ReLU FFN 512, tied: for tests and CPU recipes."""
    return T5Config(vocab_size=8000, n_layer=2, n_head=4, d_model=128, d_kv=32, d_ff=512)


@register_model("t5-mini")
def t5_mini() -> T5Config:
    """3 + 3 layers, d_model 256, 4 heads of 64, ReLU FFN 1024, tied (~7.5M with 8k pieces): CPU translation."""
    return T5Config(vocab_size=8000, n_layer=3, n_head=4, d_model=256, d_kv=64, d_ff=1024)


@register_model("t5-small")
def t5_small() -> T5Config:
    """T5-Small (Raffel et al.): 6 + 6 layers, 512 wide, 8 heads of 64, ReLU FFN 2048 (~60M parameters)."""
    return T5Config(vocab_size=32128, n_layer=6, n_head=8, d_model=512, d_kv=64, d_ff=2048)


@register_model("t5-base")
def t5_base() -> T5Config:
    """T5-Base: 12 + 12 layers, 768 wide, 12 heads of 64, ReLU FFN 3072 (~220M parameters)."""
    return T5Config(vocab_size=32128, n_layer=12, n_head=12, d_model=768, d_kv=64, d_ff=3072)


@register_model("t5-v1_1-small")
def t5_v1_1_small() -> T5Config:
    """T5 v1.1 Small: 8 + 8 layers, 512 wide, 6 heads of 64 (inner 384), gated-GELU FFN 1024, untied (~77M)."""
    return T5Config(vocab_size=32128, n_layer=8, n_head=6, d_model=512, d_kv=64, d_ff=1024, ffn="gated-gelu",
                    tie_weights=False)
