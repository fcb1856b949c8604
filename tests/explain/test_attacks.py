"""FGSM / PGD against closed forms, eps = 0 as the identity, and the word-substitution attack on a hand-built
model whose decisive token is known."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from fromzero.explain.classifier import load_classifier, logits_from_embeddings
from fromzero.explain.embedding_attack import accuracy_under_attack, adversarial_embeddings
from fromzero.explain.perturbation import fgsm, pgd
from fromzero.explain.splits import text_split
from fromzero.explain.textfooler import Neighbours, accuracy_by_budget, attack_example


def test_fgsm_on_a_linear_model_is_the_closed_form() -> None:
    """Two-class logits z = W x + b, loss CE(z, y): grad_x = (p_y - 1) w_y + p_o w_o = p_o (w_o - w_y), so
    x_adv = x + eps * sign(w_o - w_y), whatever x and b (p_o > 0)."""
    torch.manual_seed(0)
    W, b = torch.randn(2, 5), torch.randn(2)
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 1, 0])
    adv = fgsm(lambda v: F.cross_entropy(v @ W.T + b, y, reduction="sum"), x, 0.1)
    other = 1 - y
    expected = x + 0.1 * torch.sign(W[other] - W[y])
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-7)


def test_pgd_stays_in_the_ball_and_eps_zero_changes_nothing() -> None:
    torch.manual_seed(0)
    W, x, y = torch.randn(3, 6), torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])

    def loss(v: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(v @ W.T, y, reduction="sum")

    adv = pgd(loss, x, 0.2, steps=7)
    assert float((adv - x).abs().max()) <= 0.2 + 1e-6
    assert loss(adv) > loss(x)  # it does attack
    for attack in (lambda: fgsm(loss, x, 0.0), lambda: pgd(loss, x, 0.0, steps=5)):
        assert torch.equal(attack(), x)


def test_fgsm_on_toy_embeddings_moves_each_real_token_by_the_closed_form(make_toy) -> None:
    """Sum pooling then W: grad wrt each real token's embedding is p_o (w_o - w_y); padding does not move."""
    W = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]])
    clf = make_toy(torch.randn(6, 3), W, torch.zeros(2), ["<pad>", "a", "b", "c", "d", "e"])
    batch = clf.batch([{"input_ids": [1, 2, 3], "token_type_ids": [0] * 3, "labels": 0},
                       {"input_ids": [4, 5], "token_type_ids": [0] * 2, "labels": 1}])
    adv, clean = adversarial_embeddings(clf, batch, "fgsm", 0.05)
    step = torch.stack([torch.sign(W[1] - W[0]), torch.sign(W[0] - W[1])])[:, None, :] * 0.05  # (B, 1, C)
    expected = clean + step * batch["attention_mask"][..., None]
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-7)
    assert torch.equal(adv[1, 2], clean[1, 2])  # the padded position


def test_eps_zero_keeps_the_clean_accuracy(classifier_run: Path) -> None:
    """Accuracy at eps = 0 equals the fine-tune's own test predictions (finetune.predict), for FGSM and PGD;
    a small eps raises the true labels' cross-entropy."""
    from fromzero.finetune.evaluate import finetuned_task_data, load_finetuned
    from fromzero.finetune.predict import task_outputs

    run = load_finetuned(classifier_run)
    out = task_outputs(run.model, finetuned_task_data(run, "test"), "test")
    clean = sum(int(a == b) for a, b in zip(out.y_true, out.y_pred, strict=True)) / len(out.y_true)
    clf = load_classifier(classifier_run, "attack")
    features = text_split(clf, "test")
    batch = clf.batch(features)
    for method in ("fgsm", "pgd"):
        assert accuracy_under_attack(clf, features, method, [0.0], steps=3, show=False) == [clean]
        adv, emb = adversarial_embeddings(clf, batch, method, 0.01, steps=3)
        losses = [F.cross_entropy(logits_from_embeddings(clf.model, clf.embedding, e, batch["input_ids"],
                                                         **clf.forward_kwargs(batch)), batch["labels"])
                  for e in (emb, adv)]
        assert losses[1] > losses[0], method


def test_textfooler_substitutes_the_decisive_token(make_toy) -> None:
    """z1 - z0 = 2 * (sum of the first embedding coordinates) - 0.5. In [the, good, a] 'good' decides class 1;
    its two nearest neighbours by cosine are 'fine' (keeps class 1) and 'bad' (sum -0.1: class 0). Budget 1/3
    (one of three tokens) flips it; budget 0 changes nothing."""
    names = ["<pad>", "good", "the", "a", "bad", "fine"]
    emb = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, -1.0], [0.1, -1.0], [-0.2, 1.0], [1.2, 1.0]])
    clf = make_toy(emb, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.tensor([0.25, -0.25]), names)
    feature = {"input_ids": [2, 1, 3], "token_type_ids": [0, 0, 0], "labels": 1}
    result = attack_example(clf, feature, Neighbours(clf, k=2), max_fraction=1.0)
    assert result.flipped_after == 1 and result.ids == [2, names.index("bad"), 3]
    assert accuracy_by_budget([result], [0.0, 0.34, 1.0]) == [1.0, 0.0, 0.0]
