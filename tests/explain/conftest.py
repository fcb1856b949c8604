"""Fixtures of the explanation and attack tests: a tiny fine-tuned classifier run, and a hand-built toy
classifier whose every number can be worked out by hand."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fromzero.data.task_encoding import Framing
from fromzero.explain.classifier import TextClassifier
from toy_data import finetune_topic_run, make_topic_rows

WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"], "music": ["song", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "today"]


@pytest.fixture(scope="session")
def classifier_run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """The tiny character GPT fine-tuned for 6 steps on a toy 3-class topic task (full fine-tuning)."""
    splits = {split: make_topic_rows(n, seed, WORDS, FILLER, 2)
              for split, n, seed in (("train", 24, 0), ("validation", 9, 1), ("test", 12, 2))}
    return finetune_topic_run(tmp_path_factory.mktemp("explain-ft"), tiny_run, splits, max_len=32, max_steps=6,
                              batch_size=8, log_every=3, eval_every=6)


class SumPoolClassifier(nn.Module):
    """logits = W sum_t m_t e_t + b: token embeddings summed over real positions, then one linear layer."""

    def __init__(self, embeddings: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.tok_emb = nn.Embedding.from_pretrained(embeddings, freeze=False)
        self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        e = self.backbone.tok_emb(input_ids)
        m = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        return self.head((e * m.unsqueeze(-1).float()).sum(1))


class ToyTokenizer:
    """Ids 0..V-1 named by ``names``; id 0 is the padding token (the only special token)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.special_tokens = [names[0]]

    def token_to_id(self, token: str) -> int | None:
        return self.names.index(token) if token in self.names else None

    def id_to_token(self, i: int) -> str:
        return self.names[i]

    def encode(self, text: str) -> list[int]:
        return [self.names.index(w) for w in text.split()]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return " ".join(self.names[i] for i in ids if not (skip_special_tokens and i == 0))


def toy_classifier(embeddings: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, names: list[str]
                   ) -> TextClassifier:
    """A :class:`TextClassifier` over :class:`SumPoolClassifier` (no framing tokens; pad id 0)."""
    model = SumPoolClassifier(embeddings, weight, bias).eval()
    run = SimpleNamespace(tokenizer=ToyTokenizer(names), max_len=16, path=Path("toy"))
    labels = [f"class{k}" for k in range(weight.shape[0])]
    return TextClassifier(run, model, Framing((), (), (), 0, False), labels, "single_label")


@pytest.fixture()
def make_toy():
    """:func:`toy_classifier`, as a fixture (test modules cannot import a conftest by name)."""
    return toy_classifier
