"""GPT: a decoder-only Transformer language model, in one file.

    h_0 = E[x] (+ P[positions])                       token (+ learned position) embeddings
    h_l = Block_l(h_{l-1})  for l = 1..L               causal self-attention + FFN, pre-norm
    logits = Norm(h_L) W_E^T                           output projection, tied to E by default

With ``pos="rope"``, ``norm="rmsnorm"``, ``mlp="swiglu"``, ``bias=False`` and
``n_kv_head < n_head`` the same file is a Llama-style decoder.
References: Radford et al. 2019 (GPT-2); Touvron et al. 2023 (Llama).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.nn import (
    MLP,
    Block,
    KVCache,
    LearnedPositions,
    Linear,
    RotaryEmbedding,
    SelfAttention,
    SwiGLU,
    build_attention_mask,
    make_norm,
    swiglu_hidden,
)


@dataclass(frozen=True)
class GPTConfig:
    """Shape and choices of a GPT model. Validated on construction."""

    vocab_size: int = field(65, help="number of token ids (the tokenizer's vocabulary size)")
    block_size: int = field(256, help="maximum context length in tokens")
    n_layer: int = field(6, help="number of Transformer blocks")
    n_head: int = field(6, help="number of query heads")
    n_kv_head: int | None = field(None, help="key/value heads for grouped-query attention (null = n_head)")
    n_embd: int = field(384, help="model width; must be divisible by n_head")
    mlp: Literal["gelu", "swiglu"] = field("gelu", help="feed-forward type")
    mlp_hidden: int | None = field(None, help="FFN hidden size (null: 4*n_embd gelu, ~8/3*n_embd swiglu)")
    norm: Literal["layernorm", "rmsnorm"] = field("layernorm", help="normalisation layer")
    norm_eps: float = field(1e-5, help="epsilon of the norm layers")
    pos: Literal["learned", "rope"] = field("learned", help="position encoding")
    rope_theta: float = field(10000.0, help="RoPE base frequency")
    bias: bool = field(True, help="biases in linear layers and LayerNorm")
    dropout: float = field(0.0, help="dropout on embeddings, attention and residual branches")
    tie_weights: bool = field(True, help="share the token embedding with the output projection")
    init_std: float = field(0.02, help="std of the normal init; residual projections get std/sqrt(2*n_layer)")

    def __post_init__(self) -> None:
        require(self.vocab_size > 0, "vocab_size", f"must be positive, got {self.vocab_size}")
        require(self.block_size > 0, "block_size", f"must be positive, got {self.block_size}")
        require(self.n_layer > 0, "n_layer", f"must be positive, got {self.n_layer}")
        require(self.n_head > 0, "n_head", f"must be positive, got {self.n_head}")
        require(self.n_embd % self.n_head == 0, "n_embd",
                f"{self.n_embd} is not divisible by n_head={self.n_head}; choose a multiple of {self.n_head}")
        require(self.n_kv_head is None or self.n_kv_head > 0, "n_kv_head", "must be positive or null (= n_head)")
        kv = self.n_kv_head or self.n_head
        require(self.n_head % kv == 0, "n_kv_head",
                f"n_head={self.n_head} must be a multiple of n_kv_head={self.n_kv_head}")
        require(self.pos != "rope" or self.head_dim % 2 == 0, "pos",
                f"RoPE needs an even head dimension, got n_embd/n_head = {self.head_dim}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.mlp_hidden is None or self.mlp_hidden > 0, "mlp_hidden", "must be positive")
        require(self.norm_eps > 0, "norm_eps", "must be positive")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def ffn_hidden(self) -> int:
        if self.mlp_hidden:
            return self.mlp_hidden
        return 4 * self.n_embd if self.mlp == "gelu" else swiglu_hidden(self.n_embd)


class GPT(nn.Module):
    """Decoder-only language model. ``forward(input_ids) -> logits (B, T, vocab_size)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos_emb = LearnedPositions(c.block_size, c.n_embd) if c.pos == "learned" else None
        rope = RotaryEmbedding(c.head_dim, c.block_size, c.rope_theta) if c.pos == "rope" else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(self._block(rope) for _ in range(c.n_layer))
        self.norm_f = make_norm(c.norm, c.n_embd, c.norm_eps, c.bias)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)

    def _block(self, rope: RotaryEmbedding | None) -> Block:
        c = self.config
        attn = SelfAttention(c.n_embd, c.n_head, c.n_kv_head, causal=True, bias=c.bias, dropout=c.dropout,
                             rope=rope)
        if c.mlp == "gelu":
            mlp = MLP(c.n_embd, c.ffn_hidden, bias=c.bias, dropout=c.dropout)
        else:
            mlp = SwiGLU(c.n_embd, c.ffn_hidden, bias=c.bias, dropout=c.dropout)
        norm1 = make_norm(c.norm, c.n_embd, c.norm_eps, c.bias)
        norm2 = make_norm(c.norm, c.n_embd, c.norm_eps, c.bias)
        return Block(attn, mlp, norm1, norm2, pre_norm=True)

    def _init_weights(self, module: nn.Module) -> None:
        # GPT-2 init: N(0, 0.02); projections into the residual stream are scaled
        # by 1/sqrt(2L) so the residual's variance does not grow with depth.
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            scale = 1 / math.sqrt(2 * self.config.n_layer) if getattr(module, "is_residual_projection",
                                                                      False) else 1.0
            nn.init.normal_(module.weight, mean=0.0, std=std * scale)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Embedding, LearnedPositions)):
            nn.init.normal_(module.weight, mean=0.0, std=std)

    def new_cache(self, batch: int, max_len: int | None = None, device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None) -> KVCache:
        """An empty KV cache sized for ``batch`` sequences of up to ``max_len`` tokens."""
        c, weight = self.config, self.tok_emb.weight
        heads = [block.attn.n_kv_head for block in self.blocks]  # per layer: structured pruning may differ
        return KVCache(c.n_layer, batch, heads, c.head_dim, max_len or c.block_size,
                       dtype=dtype or weight.dtype, device=device or weight.device)

    def hidden_states(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                      positions: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """input_ids (B, T) -> final normalised hidden states (B, T, C).

        attention_mask (B, S): True/1 for real tokens over all S = cached + T
        positions (left padding); positions (B, T): absolute positions (default:
        continue after the cache). The cache is advanced by T.
        """
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of {past + T} tokens exceeds block_size {self.config.block_size}")
        if positions is None:
            positions = torch.arange(past, past + T, device=input_ids.device)
        x = self.tok_emb(input_ids)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        x = self.drop(x)
        mask = None
        if attention_mask is not None:
            mask = build_attention_mask(attention_mask.bool(), T, past + T, causal=True, device=x.device)
        for i, block in enumerate(self.blocks):
            x = block(x, positions=positions, mask=mask, cache=cache, layer=i)
        if cache is not None:
            cache.advance(T)
        return self.norm_f(x)

    def forward(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """input_ids (B, T) -> logits (B, T, vocab_size). See :meth:`hidden_states`."""
        h = self.hidden_states(input_ids, attention_mask=attention_mask, positions=positions, cache=cache)
        return self.lm_head(h)

    def prefill(self, input_ids: torch.Tensor, lengths: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Right-padded prompts input_ids (k, T), row r real in [0, lengths[r]) -> next-token logits (k, V).

        Causal attention alone keeps pads out of every real token's context (pads come after it), so no
        padding mask is needed and each row sees positions 0.. as it would alone. With a cache (a fresh
        one, or :meth:`KVCache.rows` of a bigger one) positions [0, T) are written; a row's pad positions
        hold junk that its decoding overwrites before ever attending to it.
        """
        h = self.hidden_states(input_ids, cache=cache)  # (k, T, C)
        last = h[torch.arange(h.shape[0], device=h.device), lengths - 1]  # (k, C): each row's last real token
        return self.lm_head(last)

    def decode_step(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache, span: int,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
        """One new token for each of the cache's rows [0, n) (slot layout, inference only) -> logits (n, V).

        tokens, positions (n,); span and bias as in :meth:`SelfAttention.decode`. The block loop is the
        pre-norm wiring of ``nn.Block`` written out, so a step costs only the ops the math needs.
        """
        x = self.tok_emb(tokens)  # (n, C)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        for i, block in enumerate(self.blocks):
            x = x + block.attn.decode(block.norm1(x), positions, cache, i, span, bias)
            x = x + block.mlp(block.norm2(x))
        return self.lm_head(self.norm_f(x))


register_family("gpt", GPTConfig, GPT)


@register_model("gpt-char-tiny")
def gpt_char_tiny() -> GPTConfig:
    """2 layers, 64 wide: for tests and smoke runs (~0.1M parameters)."""
    return GPTConfig(vocab_size=128, block_size=64, n_layer=2, n_head=4, n_embd=64)


@register_model("gpt-char-small")
def gpt_char_small() -> GPTConfig:
    """The quickstart model: character-level, trains in minutes on 2 CPU cores (~0.8M parameters)."""
    return GPTConfig(vocab_size=128, block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0)


@register_model("gpt-char-6x384")
def gpt_char_6x384() -> GPTConfig:
    """nanoGPT's Shakespeare-char size (6 layers, 6 heads, 384 wide, 256 context): the benchmark config."""
    return GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2)


@register_model("gpt2-small")
def gpt2_small() -> GPTConfig:
    """GPT-2 124M shape (byte-level BPE vocabulary of 50257)."""
    return GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)


@register_model("gpt2-medium")
def gpt2_medium() -> GPTConfig:
    """GPT-2 350M shape."""
    return GPTConfig(vocab_size=50257, block_size=1024, n_layer=24, n_head=16, n_embd=1024)


@register_model("llama-tiny")
def llama_tiny() -> GPTConfig:
    """A small Llama-style decoder: RoPE, RMSNorm, SwiGLU, grouped-query attention, no biases."""
    return GPTConfig(vocab_size=8000, block_size=256, n_layer=4, n_head=8, n_kv_head=2, n_embd=256,
                     mlp="swiglu", norm="rmsnorm", norm_eps=1e-6, pos="rope", bias=False, tie_weights=False)
