"""FGSM / PGD on a text classifier's token embeddings: accuracy of a split under attack, per epsilon.

Each example's embeddings E (T, C) move inside the L-infinity ball |E' - E|_inf <= eps, only at real,
non-special token positions (framing tokens and padding stay put), to raise the cross-entropy of the true
label (``explain.perturbation``). Everything after the embedding layer (positions, token types, the encoder,
the head) is the model's own, through a forward hook that substitutes E'. eps is in embedding units: the
report gives the embeddings' RMS beside it as the scale to read eps against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fromzero.explain.attributions import editable
from fromzero.explain.classifier import TextClassifier, logits_from_embeddings
from fromzero.explain.perturbation import perturb
from fromzero.progress import progress


def embedding_rms(clf: TextClassifier) -> float:
    """Root mean square of the embedding table's entries: the scale eps is read against."""
    return float(clf.embedding.weight.detach().float().pow(2).mean().sqrt())


def adversarial_embeddings(clf: TextClassifier, batch: dict[str, torch.Tensor], method: str, eps: float,
                           steps: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """(adversarial, clean) embeddings (B, T, C) of a batch with ``labels``: the ball's worst case for its labels."""
    ids, labels = batch["input_ids"], batch["labels"]
    kwargs = clf.forward_kwargs(batch)
    mask = editable(clf, batch).unsqueeze(-1).float()  # (B, T, 1)
    with torch.no_grad():
        clean = clf.embedding(ids).float()

    def loss(emb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits_from_embeddings(clf.model, clf.embedding, emb, ids, **kwargs).float(), labels,
                               reduction="sum")

    return perturb(method, loss, clean, eps, steps, mask), clean


def attack_batch(clf: TextClassifier, batch: dict[str, torch.Tensor], method: str, eps: float,
                 steps: int = 10) -> torch.Tensor:
    """(B,) predicted classes of the batch after perturbing its embeddings toward the wrong classes."""
    adv, _ = adversarial_embeddings(clf, batch, method, eps, steps)
    with torch.no_grad():
        return logits_from_embeddings(clf.model, clf.embedding, adv, batch["input_ids"],
                                      **clf.forward_kwargs(batch)).argmax(-1)


def accuracy_under_attack(clf: TextClassifier, features: Sequence[dict], method: str, eps_list: Sequence[float],
                          steps: int = 10, batch_size: int = 32, show: bool = True) -> list[float]:
    """Accuracy of ``features`` (with ``labels``) under ``method`` at each eps, in the order given."""
    correct = [0] * len(eps_list)
    chunks = [features[i:i + batch_size] for i in range(0, len(features), batch_size)]
    for chunk in progress(chunks, desc=f"{method} on embeddings", unit="batch", enabled=show):
        batch = clf.batch(chunk)
        for j, eps in enumerate(eps_list):
            correct[j] += int((attack_batch(clf, batch, method, eps, steps) == batch["labels"]).sum())
    return [c / max(1, len(features)) for c in correct]
