"""Token attributions against independent references: IG completeness on a real fine-tuned run, gradient x
input against plain autograd, occlusion on a hand-built model against hand-computed probabilities."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from fromzero.explain.attributions import baseline_ids, editable, grad_x_input, integrated_gradients, occlusion
from fromzero.explain.classifier import load_classifier


def test_integrated_gradients_completeness(classifier_run: Path) -> None:
    """sum_i a_i = F(x) - F(baseline), with F(.) evaluated here by the model itself, not by Captum."""
    clf = load_classifier(classifier_run, "explain")
    batch = clf.batch([clf.encode("we saw the ball today"), clf.encode("big soup")])
    target = torch.tensor([0, 2])
    result = integrated_gradients(clf, batch, target, steps=1000)  # this tiny model needs many to converge
    with torch.no_grad():
        f_x = clf.scores(clf.logits(batch)).gather(1, target[:, None])[:, 0]
        base = {**batch, "input_ids": baseline_ids(clf, batch)}
        f_base = clf.scores(clf.logits(base)).gather(1, target[:, None])[:, 0]
    total = result.scores.sum(1)
    assert float((f_x - f_base).abs().min()) > 1e-4  # a real gap to explain
    torch.testing.assert_close(total, f_x - f_base, rtol=0.0, atol=2e-3)
    torch.testing.assert_close(result.delta, total - (f_x - f_base), rtol=0.0, atol=1e-4)  # Captum agrees
    assert result.scores[~editable(clf, batch)].abs().max() == 0  # framing and padding get nothing


def test_grad_x_input_matches_autograd(classifier_run: Path) -> None:
    clf = load_classifier(classifier_run, "explain")
    batch = clf.batch([clf.encode("we liked the song")])
    target = torch.tensor([1])
    emb = clf.embedding(batch["input_ids"]).detach().requires_grad_(True)
    handle = clf.embedding.register_forward_hook(lambda m, a, o: emb)
    try:
        score = torch.softmax(clf.model(batch["input_ids"], attention_mask=batch["attention_mask"]).float(), -1)[0, 1]
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(score, emb)
    expected = (grad * emb).sum(-1).detach() * editable(clf, batch)
    torch.testing.assert_close(grad_x_input(clf, batch, target).scores, expected, rtol=1e-4, atol=1e-6)


def test_occlusion_on_a_hand_built_model(make_toy) -> None:
    """Two classes, 1-d embeddings e = [0, 1, 2, -1] (id 0 = pad), W = [[0], [1]], b = 0: z1 - z0 = sum of e.

    Input [1, 2, 3] -> z1 - z0 = 1 + 2 - 1 = 2, p1 = sigmoid(2). Replacing token k by pad (e = 0) leaves
    2 - e_k: p1 = sigmoid(1), sigmoid(0), sigmoid(3). Occlusion toward class 1 = p1(x) - p1(x without k).
    """
    clf = make_toy(torch.tensor([[0.0], [1.0], [2.0], [-1.0]]), torch.tensor([[0.0], [1.0]]),
                         torch.zeros(2), ["<pad>", "a", "b", "c"])
    batch = clf.batch([{"input_ids": [1, 2, 3], "token_type_ids": [0, 0, 0]}])

    def sig(z: float) -> float:
        return 1 / (1 + math.exp(-z))

    expected = [sig(2) - sig(1), sig(2) - sig(0), sig(2) - sig(3)]
    got = occlusion(clf, batch, torch.tensor([1])).scores[0].tolist()
    assert len(got) == 3
    for g, e in zip(got, expected, strict=True):
        assert abs(g - e) < 1e-6, (got, expected)
