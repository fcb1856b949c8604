"""BERT: a bidirectional Transformer encoder with masked-LM and next-sentence heads, in one file.

    h_0 = Dropout(LN(E_tok[x] + E_pos[p] + E_seg[s]))      token + position + segment embeddings
    h_l = Block_l(h_{l-1})  for l = 1..L                    bidirectional self-attention + GELU FFN
    pooled = tanh(W_p h_L[:, 0] + b_p)                      the [CLS] vector ("pooler")
    MLM:  logits = LN(GELU(W_t h + b_t)) E_tok^T + b        decoder tied to the token embedding
    NSP:  logits = W_n pooled + b_n                         IsNext (0) / NotNext (1)

Blocks are post-norm as in the paper, ``x = LN(x + Sublayer(x))``; with
``pre_norm=True`` they are pre-norm, ``x = x + Sublayer(LN(x))``, and a final
LayerNorm is added after the last block. The embedding LayerNorm is kept in
both modes (one module layout for both; in pre-norm it only rescales the
residual stream's starting point). GELU is the exact erf form, as BERT's.

Module names mirror Hugging Face ``BertForPreTraining`` one to one (only the
query/key/value projections are fused into ``qkv``), so checkpoints convert
with a flat key map:

    tok_emb / pos_emb / type_emb / emb_norm   bert.embeddings.{word,position,token_type}_embeddings / LayerNorm
    blocks.i.attn.qkv = [query; key; value]   bert.encoder.layer.i.attention.self.{query,key,value}
    blocks.i.attn.proj / norm1                 ....attention.output.dense / attention.output.LayerNorm
    blocks.i.mlp.fc / mlp.proj / norm2         ....intermediate.dense / output.dense / output.LayerNorm
    pooler                                     bert.pooler.dense
    mlm_head.dense / norm / decoder            cls.predictions.transform.dense / transform.LayerNorm / decoder
    nsp_head                                   cls.seq_relationship

Reference: Devlin et al. 2018, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", https://arxiv.org/abs/1810.04805.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model
from fromzero.nn import MLP, Block, LayerNorm, LearnedPositions, Linear, SelfAttention, build_attention_mask


@dataclass(frozen=True)
class BertConfig:
    """Shape and choices of a BERT encoder. Validated on construction."""

    vocab_size: int = field(30522, help="number of token ids (the tokenizer's vocabulary size)")
    max_positions: int = field(512, help="maximum sequence length (learned absolute positions)")
    type_vocab_size: int = field(2, help="number of segment (token-type) ids; 2 for sentence A/B")
    n_layer: int = field(12, help="number of Transformer blocks")
    n_head: int = field(12, help="number of attention heads")
    n_embd: int = field(768, help="model width; must be divisible by n_head")
    mlp_hidden: int | None = field(None, help="FFN hidden size (null = 4*n_embd)")
    dropout: float = field(0.1, help="dropout on embeddings and residual branches (hidden_dropout_prob)")
    attn_dropout: float | None = field(None, help="dropout on attention probabilities (null = dropout)")
    norm_eps: float = field(1e-12, help="epsilon of the LayerNorms")
    pre_norm: bool = field(False, help="pre-norm blocks plus a final LayerNorm (original BERT is post-norm)")
    pad_id: int = field(0, help="padding token id (its embedding row starts at zero, as in BERT)")
    pooler: bool = field(True, help="build the [CLS] pooler (Hugging Face BertModel's pooler.dense)")
    mlm_head: bool = field(True, help="build the masked-LM head (tied to the token embedding)")
    nsp_head: bool = field(True, help="build the next-sentence-prediction head (needs the pooler)")
    init_std: float = field(0.02, help="std of the normal init of linear and embedding weights")

    def __post_init__(self) -> None:
        require(self.vocab_size > 0, "vocab_size", f"must be positive, got {self.vocab_size}")
        require(self.max_positions > 0, "max_positions", f"must be positive, got {self.max_positions}")
        require(self.type_vocab_size > 0, "type_vocab_size", f"must be positive, got {self.type_vocab_size}")
        require(self.n_layer > 0, "n_layer", f"must be positive, got {self.n_layer}")
        require(self.n_head > 0, "n_head", f"must be positive, got {self.n_head}")
        require(self.n_embd % self.n_head == 0, "n_embd",
                f"{self.n_embd} is not divisible by n_head={self.n_head}; choose a multiple of {self.n_head}")
        require(self.mlp_hidden is None or self.mlp_hidden > 0, "mlp_hidden", "must be positive or null")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.attn_dropout is None or 0.0 <= self.attn_dropout < 1.0, "attn_dropout",
                f"must be in [0, 1) or null, got {self.attn_dropout}")
        require(self.norm_eps > 0, "norm_eps", "must be positive")
        require(0 <= self.pad_id < self.vocab_size, "pad_id",
                f"{self.pad_id} is not a token id (vocab_size={self.vocab_size})")
        require(self.init_std > 0, "init_std", "must be positive")
        require(self.pooler or not self.nsp_head, "nsp_head", "the NSP head reads the pooled [CLS] vector; "
                "set pooler=true or nsp_head=false")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def ffn_hidden(self) -> int:
        return self.mlp_hidden or 4 * self.n_embd

    @property
    def block_size(self) -> int:
        """The longest input, under the name the GPT family uses (for sequence-length defaults)."""
        return self.max_positions


class MaskedLMHead(nn.Module):
    """BERT's MLM head: ``LN(GELU(dense(h))) W_E^T + b``; ``decoder.weight`` is tied by :class:`Bert`."""

    def __init__(self, dim: int, vocab_size: int, eps: float) -> None:
        super().__init__()
        self.dense = Linear(dim, dim)
        self.norm = LayerNorm(dim, eps=eps)
        self.decoder = Linear(dim, vocab_size, bias=True)  # the bias is BERT's output bias b

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., C) -> logits (..., vocab_size)."""
        return self.decoder(self.norm(F.gelu(self.dense(hidden), approximate="none")))


class Bert(nn.Module):
    """Bidirectional encoder. ``forward(input_ids) -> final hidden states (B, T, n_embd)``.

    Heads are separate calls so objectives compute only what they need:
    :meth:`pool`, :meth:`mlm_logits` (e.g. on masked positions only) and
    :meth:`nsp_logits`.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos_emb = LearnedPositions(c.max_positions, c.n_embd)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.n_embd)
        self.emb_norm = LayerNorm(c.n_embd, eps=c.norm_eps)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(self._block() for _ in range(c.n_layer))
        self.norm_f = LayerNorm(c.n_embd, eps=c.norm_eps) if c.pre_norm else None
        # Optional parts, so a checkpoint without them (HF BertModel, BertForMaskedLM) loads with none invented.
        self.pooler = Linear(c.n_embd, c.n_embd) if c.pooler else None
        self.mlm_head = MaskedLMHead(c.n_embd, c.vocab_size, c.norm_eps) if c.mlm_head else None
        self.nsp_head = Linear(c.n_embd, 2) if c.nsp_head else None
        self.apply(self._init_weights)
        if self.mlm_head is not None:
            self.mlm_head.decoder.weight = self.tok_emb.weight  # tied after init: one tensor, two uses

    def _block(self) -> Block:
        c = self.config
        attn_dropout = c.dropout if c.attn_dropout is None else c.attn_dropout
        attn = SelfAttention(c.n_embd, c.n_head, causal=False, dropout=c.dropout)
        attn.dropout = attn_dropout  # SDPA's dropout on attention probabilities; resid_dropout keeps c.dropout
        mlp = MLP(c.n_embd, c.ffn_hidden, dropout=c.dropout, approximate="none")
        norm1, norm2 = LayerNorm(c.n_embd, eps=c.norm_eps), LayerNorm(c.n_embd, eps=c.norm_eps)
        return Block(attn, mlp, norm1, norm2, pre_norm=c.pre_norm)

    def _init_weights(self, module: nn.Module) -> None:
        # BERT init: N(0, init_std) weights, zero biases, LayerNorm (1, 0), zero padding embedding.
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Embedding, LearnedPositions)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module is self.tok_emb:
                with torch.no_grad():
                    module.weight[self.config.pad_id].zero_()

    def hidden_states(self, input_ids: torch.Tensor, *, token_type_ids: torch.Tensor | None = None,
                      attention_mask: torch.Tensor | None = None,
                      positions: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> final hidden states (B, T, C).

        token_type_ids (B, T): segment ids (default 0 = sentence A). attention_mask
        (B, T): 1/True for real tokens, 0 for padding; padded keys are hidden from
        every query, so real tokens' outputs do not depend on padding. positions
        (B, T) or (T,): absolute positions (default 0..T-1).
        """
        seq_len = input_ids.shape[1]
        if seq_len > self.config.max_positions:
            raise ValueError(f"sequence of {seq_len} tokens exceeds max_positions {self.config.max_positions}")
        if positions is None:
            positions = torch.arange(seq_len, device=input_ids.device)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.tok_emb(input_ids) + self.pos_emb(positions) + self.type_emb(token_type_ids)  # (B, T, C)
        x = self.drop(self.emb_norm(x))
        mask = None
        if attention_mask is not None:
            mask = build_attention_mask(attention_mask.bool(), seq_len, seq_len, causal=False, device=x.device)
        for block in self.blocks:
            x = block(x, mask=mask)
        return self.norm_f(x) if self.norm_f is not None else x

    def forward(self, input_ids: torch.Tensor, *, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, positions: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> final hidden states (B, T, C). See :meth:`hidden_states`."""
        return self.hidden_states(input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                                  positions=positions)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, C) -> pooled (B, C) = tanh(W_p h[:, 0] + b_p), the [CLS] summary."""
        if self.pooler is None:
            raise ValueError("this model has no pooler; build it with pooler=true (or pool the hidden states "
                             "yourself, e.g. the first token or a mean)")
        return torch.tanh(self.pooler(hidden[:, 0]))

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., C) -> masked-LM logits (..., vocab_size); pass only masked positions to save work."""
        if self.mlm_head is None:
            raise ValueError("this model has no masked-LM head; build it with mlm_head=true")
        return self.mlm_head(hidden)

    def nsp_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled (B, C) -> next-sentence logits (B, 2): index 0 = B follows A, 1 = B is random."""
        if self.nsp_head is None:
            raise ValueError("this model has no NSP head; build it with nsp_head=true")
        return self.nsp_head(pooled)


register_family("bert", BertConfig, Bert)


@register_model("bert-tiny")
def bert_tiny() -> BertConfig:
    """Google's BERT-Tiny shape: 2 layers, 128 wide, 2 heads (~4.4M parameters, 3.9M of them embeddings)."""
    return BertConfig(n_layer=2, n_embd=128, n_head=2)


@register_model("bert-mini")
def bert_mini() -> BertConfig:
    """Google's BERT-Mini shape: 4 layers, 256 wide, 4 heads."""
    return BertConfig(n_layer=4, n_embd=256, n_head=4)


@register_model("bert-small")
def bert_small() -> BertConfig:
    """Google's BERT-Small shape: 4 layers, 512 wide, 8 heads."""
    return BertConfig(n_layer=4, n_embd=512, n_head=8)


@register_model("bert-medium")
def bert_medium() -> BertConfig:
    """Google's BERT-Medium shape: 8 layers, 512 wide, 8 heads."""
    return BertConfig(n_layer=8, n_embd=512, n_head=8)


@register_model("bert-base")
def bert_base() -> BertConfig:
    """BERT-Base: 12 layers, 768 wide, 12 heads, 512 positions (~110M parameters)."""
    return BertConfig(n_layer=12, n_embd=768, n_head=12)
