"""``textfooler-lite``: a greedy word-substitution attack in the model's own embedding space.

For one correctly classified example (after Jin et al., 2020, TextFooler, without its external synonym
embeddings and sentence encoder):

1. rank the editable tokens by occlusion importance (the drop in the true class's probability when the
   token is replaced by padding), most important first;
2. for each token in that order, try its ``k`` nearest neighbours by cosine similarity in the model's token
   embedding table (special tokens and the token itself excluded) and keep the substitution that lowers the
   true class's probability most;
3. stop as soon as the prediction flips, or after ``max_subs`` substitutions.

The budget is a fraction of the editable tokens (``eps`` of ``fromzero attack``): an example counts as
broken at budget b when it flipped within floor(b * n_editable) substitutions. The greedy path does not
depend on the budget, so one pass at the largest budget gives the whole accuracy-vs-budget curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fromzero.explain.attributions import editable, occlusion
from fromzero.explain.classifier import TextClassifier


@dataclass
class Substitution:
    """The outcome on one example: substitutions until the flip (None: correct and never flipped; 0: wrong
    already), the editable-token count, and the edited ids."""

    flipped_after: int | None
    n_editable: int
    ids: list[int]


class Neighbours:
    """Nearest tokens by cosine similarity in the embedding table, special tokens excluded."""

    def __init__(self, clf: TextClassifier, k: int) -> None:
        self.unit = F.normalize(clf.embedding.weight.detach().float(), dim=-1)  # (V, C)
        self.blocked = torch.zeros(self.unit.shape[0], dtype=torch.bool)
        self.blocked[[i for i in clf.special_ids if 0 <= i < self.unit.shape[0]]] = True
        self.k = k

    def __call__(self, token: int) -> list[int]:
        sim = self.unit @ self.unit[token]
        sim[self.blocked] = float("-inf")
        sim[token] = float("-inf")
        return [int(i) for i in sim.topk(min(self.k, int((~self.blocked).sum()) - 1)).indices]


@torch.no_grad()
def attack_example(clf: TextClassifier, feature: dict, neighbours: Neighbours, max_fraction: float) -> Substitution:
    """Greedy substitutions on one feature (``input_ids``, ``token_type_ids``, ``labels``)."""
    batch = clf.batch([feature])
    label = int(feature["labels"])
    where = editable(clf, batch)[0].nonzero()[:, 0].tolist()
    ids = list(feature["input_ids"])
    if int(clf.logits(batch).argmax(-1)) != label:
        return Substitution(0, len(where), ids)
    order = occlusion(clf, batch, torch.tensor([label])).scores[0]
    ranked = sorted(where, key=lambda i: -float(order[i]))[:math.floor(max_fraction * len(where))]
    for n, pos in enumerate(ranked, start=1):
        candidates = neighbours(ids[pos])
        rows = [{**feature, "input_ids": ids[:pos] + [c] + ids[pos + 1:]} for c in candidates]
        if not rows:
            break
        logits = clf.logits(clf.batch(rows))
        best = int(clf.scores(logits)[:, label].argmin())
        ids = rows[best]["input_ids"]
        if int(logits[best].argmax()) != label:
            return Substitution(n, len(where), ids)
    return Substitution(None, len(where), ids)


def accuracy_by_budget(results: list[Substitution], budgets: list[float]) -> list[float]:
    """Accuracy at each budget (fraction of editable tokens that may be substituted)."""
    out = []
    for b in budgets:
        kept = sum(1 for r in results if r.flipped_after != 0 and
                   (r.flipped_after is None or r.flipped_after > math.floor(b * r.n_editable)))
        out.append(kept / max(1, len(results)))
    return out
