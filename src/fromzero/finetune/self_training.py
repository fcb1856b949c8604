"""Self-training, the model-agnostic parts: which unlabeled rows get pseudo labels, and how good they were.

A round predicts class probabilities for an unlabeled pool; :func:`select_pseudo_labels`
keeps the rows whose top probability reaches ``threshold`` (rows already taken in an
earlier round are skipped), highest confidence first, optionally balanced across the
predicted classes and capped at ``max_per_round``. :func:`round_report` counts what was
added and, where gold labels are known, how many pseudo labels were right.
The orchestration (train, predict, retrain) is ``fromzero.train.self_train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fromzero.config import field, require


@dataclass(frozen=True)
class SelfTrainingConfig:
    """How many rounds, and which predictions become pseudo labels."""

    rounds: int = field(3, help="retraining rounds after the labeled-only run")
    threshold: float = field(0.9, help="minimum top-class probability for a pseudo label")
    max_per_round: int | None = field(None, help="most pseudo labels one round adds (null: no cap)")
    per_class_balance: bool = field(False, help="every predicted class adds as many rows as the rarest one")

    def __post_init__(self) -> None:
        require(self.rounds >= 1, "rounds", f"must be >= 1, got {self.rounds}")
        require(0.0 <= self.threshold <= 1.0, "threshold", f"must be in [0, 1], got {self.threshold}")
        require(self.max_per_round is None or self.max_per_round >= 1, "max_per_round",
                f"must be >= 1 or null, got {self.max_per_round}")


def select_pseudo_labels(probs: torch.Tensor, threshold: float, max_per_round: int | None = None,
                         already_taken: torch.Tensor | None = None, *, per_class_balance: bool = False
                         ) -> tuple[list[int], list[int], list[float]]:
    """Rows of ``probs`` (N, C) to pseudo-label: (indices, predicted classes, confidences), most confident first.

    A row qualifies when its top probability is >= ``threshold`` and ``already_taken`` (N bools) is not set.
    ``per_class_balance`` keeps, for every predicted class, only as many rows as the class with the fewest
    qualifying rows has (each class's most confident ones); ``max_per_round`` then caps the total. Ties in
    confidence keep row order.
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be (N, C), got shape {tuple(probs.shape)}")
    conf, pred = probs.float().max(dim=-1)
    ok = conf >= threshold
    if already_taken is not None:
        ok &= ~already_taken.bool()
    rows = torch.nonzero(ok).flatten().tolist()
    rows.sort(key=lambda i: -float(conf[i]))  # stable: equal confidences keep file order
    if per_class_balance and rows:
        by_class: dict[int, list[int]] = {}
        for i in rows:
            by_class.setdefault(int(pred[i]), []).append(i)
        keep = min(len(v) for v in by_class.values())
        kept = {i for v in by_class.values() for i in v[:keep]}
        rows = [i for i in rows if i in kept]
    if max_per_round is not None:
        rows = rows[:max_per_round]
    return rows, [int(pred[i]) for i in rows], [float(conf[i]) for i in rows]


def round_report(indices: Sequence[int], labels: Sequence[int], gold: Sequence[int | None]) -> dict:
    """``added``: pseudo labels this round; ``accuracy``: share matching ``gold[index]`` over the rows whose
    gold is known (None when none is); ``with_gold``: how many rows that share counts."""
    known = [(y, gold[i]) for i, y in zip(indices, labels, strict=True) if gold[i] is not None]
    accuracy = sum(y == g for y, g in known) / len(known) if known else None
    return {"added": len(indices), "with_gold": len(known), "accuracy": accuracy}
