"""Word2Vec: two embedding tables, trained with negative sampling (Mikolov et al. 2013).

    v_w = V[w]      the "input" vector of word w: the word vector kept after training
    u_w = U[w]      the "output" (context) vector of word w

    skip-gram:  h = v_center                           predicts each context word o from the center
    CBOW:       h = (1/m) sum_{j=1..m} v_{context_j}   predicts the center from its m context words

The model only computes ``h`` (:meth:`Word2Vec.forward`) and looks up ``u`` (:meth:`Word2Vec.output_vectors`);
the loss over ``u_o . h`` and the sampled negatives ``u_k . h`` is ``objectives/negative_sampling.py``.
Init as in word2vec.c: V uniform in [-0.5/dim, 0.5/dim], U zero.
References: Mikolov et al. 2013, https://arxiv.org/abs/1301.3781 and https://arxiv.org/abs/1310.4546.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.config import field, require
from fromzero.models.registry import register_family, register_model

MODES = ("skipgram", "cbow")


@dataclass(frozen=True)
class Word2VecConfig:
    """Vocabulary, vector width and which of the two Word2Vec models."""

    vocab_size: int = field(8000, help="number of token ids (the tokenizer's vocabulary size)")
    dim: int = field(100, help="width of the word vectors")
    mode: Literal["skipgram", "cbow"] = field("skipgram", help="skipgram (center -> context) or cbow "
                                                                "(mean of the context -> center)")

    def __post_init__(self) -> None:
        require(self.vocab_size > 0, "vocab_size", f"must be positive, got {self.vocab_size}")
        require(self.dim > 0, "dim", f"must be positive, got {self.dim}")
        require(self.mode in MODES, "mode", f"must be one of {', '.join(MODES)}, got {self.mode!r}")


class Word2Vec(nn.Module):
    """Input vectors ``in_embed`` (V, D) and output vectors ``out_embed`` (V, D)."""

    def __init__(self, config: Word2VecConfig) -> None:
        super().__init__()
        self.config = config
        self.in_embed = nn.Embedding(config.vocab_size, config.dim)
        self.out_embed = nn.Embedding(config.vocab_size, config.dim)
        with torch.no_grad():
            self.in_embed.weight.uniform_(-0.5 / config.dim, 0.5 / config.dim)
            self.out_embed.weight.zero_()

    @property
    def mode(self) -> str:
        return self.config.mode

    def forward(self, center: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        """The hidden vector h (B, D) of each row: ``v_center`` (skip-gram) or the mean of the input vectors of
        the context words where ``context_mask`` (B, C) is True (CBOW; a row without context gets h = 0)."""
        if self.config.mode == "skipgram":
            return self.in_embed(center)  # (B, D)
        mask = context_mask.to(self.in_embed.weight.dtype)  # (B, C)
        total = (self.in_embed(context) * mask[..., None]).sum(1)  # (B, D)
        return total / mask.sum(1, keepdim=True).clamp_min(1.0)

    def output_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """``u`` of every id: shape ``ids.shape + (D,)``."""
        return self.out_embed(ids)

    def word_vectors(self) -> torch.Tensor:
        """The word vectors (V, D): the input table, as word2vec.c and gensim save."""
        return self.in_embed.weight

    @torch.no_grad()
    def most_similar(self, ids: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine similarity and id of the ``k`` nearest other words of each id in ``ids`` (Q,): (Q, k) each."""
        unit = F.normalize(self.word_vectors().float(), dim=-1)  # (V, D)
        sims = unit[ids] @ unit.T  # (Q, V)
        sims[torch.arange(len(ids)), ids] = -float("inf")  # a word is not its own neighbour
        return sims.topk(min(k, sims.shape[1] - 1), dim=-1)


register_family("word2vec", Word2VecConfig, Word2Vec)


@register_model("word2vec-skipgram-100")
def word2vec_skipgram_100() -> Word2VecConfig:
    """Skip-gram with 100-wide vectors (the vocabulary comes from the tokenizer)."""
    return Word2VecConfig(dim=100, mode="skipgram")


@register_model("word2vec-cbow-100")
def word2vec_cbow_100() -> Word2VecConfig:
    """CBOW with 100-wide vectors (the vocabulary comes from the tokenizer)."""
    return Word2VecConfig(dim=100, mode="cbow")
