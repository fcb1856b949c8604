"""The SGNS loss and its gradients equal the hand-derived formulas, pair by pair, for skip-gram and CBOW: each
pair with its own negatives, a negative equal to the positive word skipped (word2vec.c)."""

from __future__ import annotations

import math

import pytest
import torch

from fromzero.models.word2vec import Word2Vec, Word2VecConfig
from fromzero.objectives.negative_sampling import NegativeSampling


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _model(mode: str) -> Word2Vec:
    torch.manual_seed(0)
    model = Word2Vec(Word2VecConfig(vocab_size=7, dim=3, mode=mode)).double()
    with torch.no_grad():  # U starts at zero in word2vec.c: random here so every term is exercised
        model.in_embed.weight.normal_()
        model.out_embed.weight.normal_()
    return model


# negatives[b, j]: the K = 2 negatives of (row b, context slot j). Word 2 is a context word of rows 0 and 1;
# slot 0 of row 0 draws its own positive 2 as a negative (skipped), slot 1 draws word 2 (used: positive is 3);
# row 2 has no context word: no skip-gram pair, and no CBOW prediction
BATCH = {"center": torch.tensor([1, 4, 6]),
         "context": torch.tensor([[2, 3, 0], [5, 2, 2], [1, 1, 1]]),
         "context_mask": torch.tensor([[True, True, False], [True, True, True], [False, False, False]]),
         "negatives": torch.tensor([[[2, 6], [2, 0], [5, 5]],
                                    [[0, 4], [3, 3], [6, 1]],
                                    [[3, 4], [0, 0], [1, 1]]])}


def _pairs(mode: str) -> list[tuple[list[int], int, list[int]]]:
    """(input words averaged into h, positive word, negatives used) of every scored pair, read off BATCH by hand."""
    if mode == "skipgram":
        return [([1], 2, [6]), ([1], 3, [2, 0]), ([4], 5, [0, 4]), ([4], 2, [3, 3]), ([4], 2, [6, 1])]
    return [([2, 3], 1, [2, 6]), ([5, 2, 2], 4, [0])]  # CBOW: slot 0's negatives; row 1 skips its center 4


def _naive(model: Word2Vec, mode: str) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Loss and gradients from l = -log s(u_o.h) - sum_k log s(-u_k.h), one pair at a time, as plain floats."""
    V, U = model.in_embed.weight.detach(), model.out_embed.weight.detach()
    gV, gU, total = torch.zeros_like(V), torch.zeros_like(U), 0.0
    pairs = _pairs(mode)
    for inputs, o, negs in pairs:
        h = sum(V[i] for i in inputs) / len(inputs)
        s_o = _sig(float(U[o] @ h))
        total += -math.log(s_o) - sum(math.log(_sig(-float(U[k] @ h))) for k in negs)
        grad_h = (s_o - 1) * U[o] + sum(_sig(float(U[k] @ h)) * U[k] for k in negs)
        for i in inputs:  # h is the mean of the inputs: each gets dl/dh / m
            gV[i] += grad_h / len(inputs)
        gU[o] += (s_o - 1) * h
        for k in negs:
            gU[k] += _sig(float(U[k] @ h)) * h
    n = len(pairs)
    return total / n, gV / n, gU / n


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_loss_and_gradients_match_the_hand_derived_formulas(mode: str) -> None:
    model = _model(mode)
    out = NegativeSampling()(model, BATCH)
    out.loss.backward()
    loss, gV, gU = _naive(model, mode)
    assert out.weight == len(_pairs(mode))
    assert float(out.metrics["loss"]) == pytest.approx(loss, rel=1e-6)
    torch.testing.assert_close(model.in_embed.weight.grad.double(), gV, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.out_embed.weight.grad.double(), gU, rtol=1e-5, atol=1e-6)


def test_pair_accuracy_counts_positives_above_and_negatives_below_one_half() -> None:
    """One skip-gram pair: u_o.h > 0 (right), negatives u.h = +1 (wrong) and -1 (right): 2 of 3."""
    model = Word2Vec(Word2VecConfig(vocab_size=4, dim=1, mode="skipgram"))
    with torch.no_grad():
        model.in_embed.weight.copy_(torch.tensor([[1.0], [0.0], [0.0], [0.0]]))
        model.out_embed.weight.copy_(torch.tensor([[0.0], [2.0], [1.0], [-1.0]]))
    batch = {"center": torch.tensor([0]), "context": torch.tensor([[1]]), "context_mask": torch.tensor([[True]]),
             "negatives": torch.tensor([[[2, 3]]])}
    out = NegativeSampling()(model, batch)
    assert float(out.metrics["pair_accuracy"]) == pytest.approx(2 / 3)
    expected = -math.log(_sig(2.0)) - math.log(_sig(-1.0)) - math.log(_sig(1.0))
    assert float(out.metrics["loss"]) == pytest.approx(expected, rel=1e-6)
