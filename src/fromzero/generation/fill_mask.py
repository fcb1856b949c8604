"""Fill-mask: a masked language model's top-k guesses for every ``[MASK]`` in a text.

For a masked position i the model gives p(token | context) = softmax(MLM logits_i),
conditioned on both sides of the sentence (Devlin et al. 2018,
https://arxiv.org/abs/1810.04805). Texts are encoded with the tokenizer's
special tokens (``[CLS] ... [SEP]`` for WordPiece), right-padded into one
batch, and padding is hidden from attention with ``attention_mask``, so each
text's predictions are those it would get alone.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from fromzero.errors import DataError

MASK_TOKEN = "[MASK]"


class MaskTokenizer(Protocol):
    """What fill-mask needs from a tokenizer (``fromzero.data`` tokenizers satisfy it)."""

    @property
    def pad_id(self) -> int | None: ...

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]: ...

    def token_to_id(self, token: str) -> int | None: ...

    def id_to_token(self, token_id: int) -> str | None: ...


class MaskedLM(Protocol):
    """A masked language model: hidden states from ids, then MLM logits (``fromzero.models.Bert``)."""

    def __call__(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None) -> torch.Tensor: ...

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor: ...


def _encode(tokenizer: MaskTokenizer, texts: list[str], mask_id: int, max_len: int | None) -> list[list[int]]:
    rows = []
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text, add_special_tokens=True)
        if mask_id not in ids:
            raise DataError(f"text {i} has no {MASK_TOKEN} token to fill: {text[:60]!r}; write {MASK_TOKEN} where a "
                            "word should be guessed")
        if max_len is not None and len(ids) > max_len:
            raise DataError(f"text {i} is {len(ids)} tokens long; the model takes at most {max_len} tokens: shorten it")
        rows.append(ids)
    return rows


@torch.no_grad()
def fill_mask(model: nn.Module, tokenizer: MaskTokenizer, texts: list[str],
              top_k: int = 5) -> list[list[list[tuple[str, float]]]]:
    """Top-k (token, probability) for each ``[MASK]`` of each text: ``result[text][mask][rank]``.

    Probabilities are the softmax over the whole vocabulary, so each list is
    sorted in decreasing order and sums to at most 1. Raises DataError when
    the tokenizer has no ``[MASK]`` token, a text has no ``[MASK]`` or a text is
    longer than the model's ``max_positions``; ValueError when ``top_k`` < 1. The model runs
    in eval mode; its previous mode is restored.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if not texts:
        return []
    mask_id = tokenizer.token_to_id(MASK_TOKEN)
    if mask_id is None:
        raise DataError(f"the tokenizer has no {MASK_TOKEN} token; train a wordpiece tokenizer "
                         f"(its default special tokens include {MASK_TOKEN}) or add it as a special token")
    config = getattr(model, "config", None)
    rows = _encode(tokenizer, texts, mask_id, getattr(config, "max_positions", None))
    pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else getattr(config, "pad_id", 0)
    device = next(model.parameters()).device
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)  # right padding
    attention_mask = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    for b, row in enumerate(rows):
        ids[b, :len(row)] = torch.tensor(row, device=device)
        attention_mask[b, :len(row)] = 1

    was_training = model.training
    model.eval()
    try:
        hidden = model(ids, attention_mask=attention_mask)  # (B, T, C)
        where = (ids == mask_id) & attention_mask.bool()
        probs = model.mlm_logits(hidden[where]).float().softmax(-1)  # (N, V), N masks in row-major order
    finally:
        model.train(was_training)
    top_p, top_i = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    counts = where.sum(1).tolist()
    results: list[list[list[tuple[str, float]]]] = []
    n = 0
    for count in counts:
        per_text = []
        for j in range(n, n + count):
            per_text.append([(tokenizer.id_to_token(int(i)) or f"<{int(i)}>", float(p))
                             for p, i in zip(top_p[j].tolist(), top_i[j].tolist(), strict=True)])
        results.append(per_text)
        n += count
    return results
