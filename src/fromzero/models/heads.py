"""Task heads that wrap any backbone by composition: classification, regression, tagging, extractive QA.

A head module holds the backbone under ``backbone.`` and its own layers under
``head.``, so a pretrained checkpoint loads into ``backbone`` unchanged and
partial fine-tuning can select ``head.*``:

    SequenceClassifier  head.dropout -> head.classifier      pooled (B, C) -> logits (B, num_labels)
    TokenClassifier     head.dropout -> head.classifier      hidden (B, T, C) -> logits (B, T, num_labels)
    SpanQA              head.qa_outputs                      hidden (B, T, C) -> logits (B, T, 2): start, end

For a BERT backbone these are Hugging Face's ``BertFor{SequenceClassification,
TokenClassification,QuestionAnswering}`` layer for layer: ``backbone.*`` is
``bert.*``, ``head.classifier`` is ``classifier``, ``head.qa_outputs`` is
``qa_outputs``, and ``cls`` pooling runs BERT's own pooler,
``tanh(W_p h[:, 0] + b_p)``, before dropout as HF does.

The backbone is reached through :class:`HiddenStatesBackbone` (GPT, BERT:
``hidden_states``) or :class:`EncoderBackbone` (T5: ``encode``, the encoder
alone; the decoder's parameters stay in the module, untouched). Pooling a
sequence into one vector (B, T, C) -> (B, C):

    cls    first token; through the backbone's ``pool`` when it has one (BERT's pooler)   default: BERT
    first  first token's hidden state, no pooler
    last   last real (attention_mask = 1) token: the only one a causal model lets see  default: GPT, RNN
           the whole sequence
    mean   mean over real tokens                                                          default: T5, others

Padding: attention masks keep real tokens' outputs independent of padding;
use right padding for causal models (left padding shifts learned positions).
"""

from __future__ import annotations

import inspect
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import nn

from fromzero.errors import ConfigError
from fromzero.models.registry import family_of
from fromzero.nn import Linear

Pooling = Literal["cls", "first", "last", "mean"]
Problem = Literal["single_label", "multi_label", "regression"]
POOLINGS: tuple[str, ...] = ("cls", "first", "last", "mean")
PROBLEMS: tuple[str, ...] = ("single_label", "multi_label", "regression")
DEFAULT_POOLING = {"bert": "cls", "gpt": "last", "t5": "mean", "rnn": "last"}


@runtime_checkable
class HiddenStatesBackbone(Protocol):
    """A token encoder: input_ids (B, T) -> hidden states (B, T, C) (GPT, BERT)."""

    def hidden_states(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None
                      ) -> torch.Tensor: ...


@runtime_checkable
class EncoderBackbone(Protocol):
    """An encoder-decoder used encoder-only: input_ids (B, S) -> memory (B, S, C) (T5)."""

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor: ...


def default_pooling(backbone: nn.Module) -> str:
    """The pooling a backbone's family is trained for (see module docstring); ``mean`` when unknown."""
    try:
        return DEFAULT_POOLING.get(family_of(getattr(backbone, "config", None)).name, "mean")
    except ValueError:
        return "mean"


def pool_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """hidden (B, T, C), attention_mask (B, T) 1 = real -> (B, C); ``cls`` is the first token here."""
    if pooling in ("cls", "first"):
        return hidden[:, 0]
    if attention_mask is None:
        return hidden[:, -1] if pooling == "last" else hidden.mean(dim=1)
    mask = attention_mask.bool()
    if pooling == "last":
        T = hidden.shape[1]
        last = T - 1 - mask.flip(1).int().argmax(dim=1)  # index of the last real token, any padding side
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")


class _TaskHead(nn.Module):
    """Shared plumbing: hold the backbone, find its width, run it on a batch."""

    def __init__(self, backbone: nn.Module, hidden_size: int | None) -> None:
        super().__init__()
        if not isinstance(backbone, (HiddenStatesBackbone, EncoderBackbone)):
            raise TypeError(f"{type(backbone).__name__} has neither hidden_states(input_ids, attention_mask=...) "
                            "nor encode(input_ids, attention_mask); it cannot carry a task head")
        self.backbone = backbone
        self.hidden_size = hidden_size or self._infer_width(backbone)
        fn = backbone.hidden_states if isinstance(backbone, HiddenStatesBackbone) else backbone.encode
        self._takes_token_types = "token_type_ids" in inspect.signature(fn).parameters
        self.head = nn.Module()

    @staticmethod
    def _infer_width(backbone: nn.Module) -> int:
        width = getattr(backbone, "hidden_size", None)  # a backbone whose output width is not its embedding's (rnn)
        if isinstance(width, int):
            return width
        emb = getattr(backbone, "tok_emb", None)
        if isinstance(emb, nn.Embedding):
            return emb.embedding_dim
        raise ValueError(f"cannot infer the width of {type(backbone).__name__}; pass hidden_size")

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> the backbone's final hidden states (B, T, C)."""
        kwargs = {}
        if token_type_ids is not None:
            if not self._takes_token_types:
                raise ValueError(f"a {type(self.backbone).__name__} backbone has no token types (segments); "
                                 "do not pass token_type_ids")
            kwargs["token_type_ids"] = token_type_ids
        if isinstance(self.backbone, HiddenStatesBackbone):
            return self.backbone.hidden_states(input_ids, attention_mask=attention_mask, **kwargs)
        return self.backbone.encode(input_ids, attention_mask, **kwargs)

    def _linear(self, out_features: int, init_std: float) -> Linear:
        layer = Linear(self.hidden_size, out_features)
        nn.init.normal_(layer.weight, std=init_std)  # Hugging Face's initializer_range default
        nn.init.zeros_(layer.bias)
        return layer

    def _dropout(self, p: float | None) -> nn.Dropout:
        """``p`` or, when None, the backbone's own dropout (BERT's hidden_dropout_prob), as HF defaults."""
        if p is None:
            p = float(getattr(getattr(self.backbone, "config", None), "dropout", 0.0))
        return nn.Dropout(p)


class SequenceClassifier(_TaskHead):
    """One prediction per sequence: single-label or multi-label classification, or regression.

    ``forward(input_ids, attention_mask=..., token_type_ids=...) -> logits (B, num_labels)``: class
    scores (softmax for ``single_label``, independent sigmoids for ``multi_label``) or the predicted
    values (``regression``; num_labels targets, usually 1). ``pooling`` None picks the family default.
    """

    def __init__(self, backbone: nn.Module, num_labels: int, *, problem: Problem = "single_label",
                 pooling: Pooling | None = None, dropout: float | None = None, hidden_size: int | None = None,
                 init_std: float = 0.02) -> None:
        super().__init__(backbone, hidden_size)
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        if problem not in PROBLEMS:
            raise ValueError(f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}")
        self.pooling = pooling or default_pooling(backbone)
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.num_labels, self.problem = num_labels, problem
        self.head.dropout = self._dropout(dropout)
        self.head.classifier = self._linear(num_labels, init_std)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The sequence vector (B, C) the classifier reads."""
        hidden = self.encode_tokens(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        pool = getattr(self.backbone, "pool", None)
        if self.pooling == "cls" and callable(pool):
            return pool(hidden)
        return pool_hidden(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> logits (B, num_labels)."""
        return self.head.classifier(self.head.dropout(self.pooled(input_ids, attention_mask, token_type_ids)))


class TokenClassifier(_TaskHead):
    """One label per token (BIO tagging for NER): ``forward(...) -> logits (B, T, num_labels)``."""

    def __init__(self, backbone: nn.Module, num_labels: int, *, dropout: float | None = None,
                 hidden_size: int | None = None, init_std: float = 0.02) -> None:
        super().__init__(backbone, hidden_size)
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        self.num_labels = num_labels
        self.head.dropout = self._dropout(dropout)
        self.head.classifier = self._linear(num_labels, init_std)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> logits (B, T, num_labels)."""
        hidden = self.encode_tokens(input_ids, attention_mask, token_type_ids)
        return self.head.classifier(self.head.dropout(hidden))


class SpanQA(_TaskHead):
    """Extractive question answering: a start and an end score per token.

    ``forward(...) -> logits (B, T, 2)``; ``logits[..., 0]`` scores answer starts, ``logits[..., 1]``
    answer ends. Padded positions get the dtype's lowest value, so they never win a span and add
    nothing to a softmax (Hugging Face leaves them unmasked; real positions are identical).
    """

    def __init__(self, backbone: nn.Module, *, hidden_size: int | None = None, init_std: float = 0.02) -> None:
        super().__init__(backbone, hidden_size)
        self.head.qa_outputs = self._linear(2, init_std)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> logits (B, T, 2)."""
        logits = self.head.qa_outputs(self.encode_tokens(input_ids, attention_mask, token_type_ids))
        if attention_mask is not None:
            logits = logits.masked_fill(~attention_mask.bool().unsqueeze(-1), torch.finfo(logits.dtype).min)
        return logits


def build_head(backbone: nn.Module, kind: str, num_labels: int, *, problem: str = "single_label",
               pooling: str | None = None, dropout: float | None = None) -> nn.Module:
    """Wrap ``backbone`` in the head of a fine-tuning task ``kind`` (its parameters under ``head.``).

    ``sft`` (causal-LM fine-tuning) and ``seq2seq`` (an encoder-decoder generating its target) add no head:
    the model's own output layer is reused, so parameter names stay the family's.
    """
    if kind == "seq2seq":
        if not all(hasattr(backbone, a) for a in ("encode", "decode", "new_cache")):
            raise ConfigError(f"task.kind: seq2seq needs an encoder-decoder (t5) base run, got a "
                              f"{type(backbone).__name__}; pretrain one with `fromzero pretrain recipes/t5_bible.yaml`")
        return backbone
    if kind == "sft":
        return backbone
    if kind == "token_classification":
        return TokenClassifier(backbone, num_labels, dropout=dropout)
    if kind == "span_qa":
        return SpanQA(backbone)
    return SequenceClassifier(backbone, num_labels, problem=problem, pooling=pooling, dropout=dropout)
