"""Objectives turn (model, batch) into a loss and named metrics."""

from fromzero.objectives.base import Objective, ObjectiveOutput
from fromzero.objectives.causal_lm import IGNORE_INDEX, CausalLM

__all__ = ["IGNORE_INDEX", "CausalLM", "Objective", "ObjectiveOutput"]
