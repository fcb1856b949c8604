"""The ``adversarial:`` recipe section both adversarial-training wrappers share (text: token embeddings, L2
per example, ``finetune/adversarial.py``; images: pixels, L-inf, ``vision/adversarial.py``).

FGM/FGSM is one step of length eps; PGD takes ``steps`` steps of ``alpha`` (default 2.5 eps / steps, Madry
et al., 2018), each projected back onto the eps ball. The loss is (clean + w * adversarial) / (1 + w).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fromzero.config import field, require

PGD_STEPS = 3  # default PGD steps
PGD_ALPHA = 2.5  # default PGD step: alpha = PGD_ALPHA * eps / steps


@dataclass(frozen=True)
class AdversarialOptions:
    """Method, radius, steps, step length and weight; each domain's subclass says what eps measures."""

    method: Literal["none", "fgm", "pgd"] = field("none", help="none | fgm (one gradient step of eps) | pgd "
                                                              "(steps projected steps inside the eps ball)")
    eps: float = field(1.0, help="radius of each example's perturbation")
    steps: int | None = field(None, help="pgd: gradient steps (null: 3); fgm takes exactly one")
    alpha: float | None = field(None, help="pgd: step length (null: 2.5 * eps / steps); fgm: eps")
    weight: float = field(1.0, help="w in (clean + w * adversarial loss) / (1 + w)")

    def __post_init__(self) -> None:
        require(self.eps >= 0, "eps", f"must be >= 0, got {self.eps}")
        require(self.weight >= 0, "weight", f"must be >= 0, got {self.weight}")
        require(self.steps is None or self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        require(self.alpha is None or self.alpha > 0, "alpha", f"must be > 0, got {self.alpha}")
        require(self.method != "fgm" or self.steps in (None, 1), "steps", "fgm takes one step; use method: pgd")
        require(self.method != "fgm" or self.alpha is None, "alpha", "fgm's step is eps; use method: pgd")

    @property
    def active(self) -> bool:
        return self.method != "none"

    def plan(self) -> tuple[int, float]:
        """(steps, alpha) of the method (FGM: one step of eps)."""
        if self.method == "fgm":
            return 1, self.eps
        steps = self.steps or PGD_STEPS
        return steps, self.alpha if self.alpha is not None else PGD_ALPHA * self.eps / steps
