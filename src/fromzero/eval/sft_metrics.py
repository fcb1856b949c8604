"""Scoring supervised fine-tuning (SFT) runs: generated replies vs. reference replies.

    exact_match   share of replies equal to the reference after strip, lowercase and whitespace collapsing
    f1            SQuAD token F1 (``eval.metrics.answer_f1``: lowercase, punctuation and a/an/the dropped)

both averaged over prompts, overall and per ``group`` (``exact_match_<group>``,
``f1_<group>``) when the data names groups. The test report adds the
majority-answer baseline (the most frequent training reply of the prompt's
group, else overall, for every prompt) and, when ``task.eval_base`` was set,
the base model's zero-shot scores on the same prompts (``finetune.evaluate``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from fromzero.errors import DataError
from fromzero.eval.metrics import answer_f1
from fromzero.eval.task_outputs import TaskOutputs


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def response_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Exact match (strip / lowercase / whitespace) and SQuAD token F1, averaged over examples."""
    n = len(predictions)
    if n != len(references) or n == 0:
        raise DataError(f"SFT metrics: {len(references)} references and {n} replies; give one reply per reference")
    em = sum(_normal(p) == _normal(r) for p, r in zip(predictions, references, strict=True))
    f1 = sum(answer_f1(p, r) for p, r in zip(predictions, references, strict=True))
    return {"exact_match": em / n, "f1": f1 / n}


def sft_metrics(out: TaskOutputs) -> dict[str, float]:
    """:func:`response_metrics` overall, plus ``<metric>_<group>`` for each group the prompts name."""
    refs = [r[0] for r in out.y_true]
    metrics = response_metrics(out.y_pred, refs)
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(out.groups or []):
        if group is not None:
            by_group[group].append(i)
    for group, idx in sorted(by_group.items()):
        part = response_metrics([out.y_pred[i] for i in idx], [refs[i] for i in idx])
        metrics.update({f"{k}_{group}": v for k, v in part.items()})
    return metrics


def majority_outputs(out: TaskOutputs, majority: dict[str, Any]) -> TaskOutputs:
    """``out`` with every prediction replaced by the majority training reply of its group (else overall)."""
    groups = out.groups or [None] * len(out.y_true)
    preds = [majority["by_group"].get(g, majority["overall"]) if g else majority["overall"] for g in groups]
    return TaskOutputs(out.kind, out.problem, out.y_true, preds, prompts=out.prompts, groups=out.groups)
