"""fill_mask: top-k tokens for [MASK] positions, batched with padding, with clear errors."""

from __future__ import annotations

import pytest
import torch

from fromzero.data.tokenizers import TokenizerConfig, train_tokenizer
from fromzero.errors import DataError
from fromzero.generation import fill_mask
from fromzero.models import create_model

TEXTS = ["the cat sat on the mat.", "the dog sat on the log.", "a cat and a dog played in the park."] * 5


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, TokenizerConfig(kind="wordpiece", vocab_size=64))


def rigged_model(tokenizer, favourite: str):
    """A random tiny BERT whose MLM output bias strongly prefers ``favourite``."""
    torch.manual_seed(0)
    model = create_model("bert", vocab_size=tokenizer.vocab_size, max_positions=32, n_layer=1, n_embd=32,
                         n_head=2, pad_id=tokenizer.pad_id)
    with torch.no_grad():
        model.mlm_head.decoder.bias[tokenizer.token_to_id(favourite)] = 20.0
    return model


def test_rigged_bias_wins_and_probabilities_are_sorted(tokenizer):
    model = rigged_model(tokenizer, "dog")
    model.train()
    texts = ["the [MASK] sat on the [MASK].", "a [MASK] played."]
    out = fill_mask(model, tokenizer, texts, top_k=4)
    assert model.training  # mode restored
    assert [len(per_text) for per_text in out] == [2, 1]  # one list per [MASK]
    for per_text in out:
        for preds in per_text:
            assert len(preds) == 4
            assert preds[0][0] == "dog" and preds[0][1] > 0.9
            probs = [p for _, p in preds]
            assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
            assert all(isinstance(tok, str) for tok, _ in preds)


def test_batch_equals_one_by_one(tokenizer):
    model = rigged_model(tokenizer, "cat")
    with torch.no_grad():
        model.mlm_head.decoder.bias.zero_()  # let the encoder, not the bias, decide
    texts = ["the [MASK] sat on the mat.", "[MASK] cat and a dog played in the [MASK] today."]
    batched = fill_mask(model, tokenizer, texts, top_k=3)
    for text, got in zip(texts, batched, strict=True):
        alone = fill_mask(model, tokenizer, [text], top_k=3)[0]
        for g, a in zip(got, alone, strict=True):
            assert [t for t, _ in g] == [t for t, _ in a]
            assert [p for _, p in g] == pytest.approx([p for _, p in a], abs=1e-5)


def test_errors(tokenizer):
    model = rigged_model(tokenizer, "dog")
    with pytest.raises(DataError, match=r"text 1 has no \[MASK\]"):
        fill_mask(model, tokenizer, ["the [MASK] sat.", "the cat sat."])
    with pytest.raises(ValueError, match="top_k"):
        fill_mask(model, tokenizer, ["the [MASK] sat."], top_k=0)
    with pytest.raises(DataError, match="at most 32"):
        fill_mask(model, tokenizer, ["the [MASK] " + "cat " * 40])
    char = train_tokenizer(TEXTS, TokenizerConfig(kind="char"))
    with pytest.raises(DataError, match=r"tokenizer has no \[MASK\] token"):
        fill_mask(model, char, ["the [MASK] sat."])
    assert fill_mask(model, tokenizer, []) == []
