"""Per-group metrics of a classifier (fairness): the same scores on each group's examples, and the gaps.

For groups g = 1..G (the values of one field of the test file, e.g. a dialect or a demographic) with
examples S_g:

    accuracy_g = |{i in S_g : y_pred_i = y_true_i}| / |S_g|
    f1_macro_g = macro-F1 over the classes present in S_g's truth or predictions (``eval.metrics``)
    gap(m)     = max_g m_g - min_g m_g                                  (for each metric m)

and, for a binary task with positive class p (the second label in labels.txt, i.e. class id 1), the
demographic-parity difference of the predicted positive rate (fairlearn):

    DP = max_g P(y_pred = p | g) - min_g P(y_pred = p | g)

A gap of 0 means every group is scored alike; DP of 0 means every group is predicted positive equally often
(whatever their true rates). Groups are listed in sorted order; each has at least one example by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fromzero.errors import DataError
from fromzero.eval.metrics import classification_metrics

GROUP_METRICS = ("accuracy", "f1_macro")  # reported per group, with the largest gap between groups


def demographic_parity_difference(y_pred: Sequence[int], groups: Sequence[str], positive: int) -> float:
    """Largest minus smallest rate of ``positive`` predictions over the groups (fairlearn's definition)."""
    from fairlearn.metrics import demographic_parity_difference as dpd

    hits = [int(p == positive) for p in y_pred]  # fairlearn takes 1 as the positive prediction
    return float(dpd(hits, hits, sensitive_features=list(groups)))


def _gaps(per_group: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    gaps = {}
    for metric in GROUP_METRICS:
        hi = max(per_group, key=lambda g: per_group[g][metric])
        lo = min(per_group, key=lambda g: per_group[g][metric])
        gaps[metric] = {"gap": per_group[hi][metric] - per_group[lo][metric], "highest": hi, "lowest": lo}
    return gaps


def group_metrics(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence[str],
                  label_names: Sequence[str]) -> dict[str, Any]:
    """Metrics per group (examples, accuracy, macro-F1; binary: predicted positive rate), the largest gap per
    metric with the groups at either end, and for two classes the demographic-parity difference."""
    if not (len(y_true) == len(y_pred) == len(groups)):
        raise DataError(f"group metrics: {len(y_true)} labels, {len(y_pred)} predictions and {len(groups)} groups; "
                        "give one group per example")
    if not groups:
        raise DataError("group metrics: no examples to score")
    binary = len(label_names) == 2
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    per_group = {}
    for g in sorted(members):
        idx = members[g]
        scores = classification_metrics([y_true[i] for i in idx], [y_pred[i] for i in idx])
        row = {"examples": len(idx), "accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"]}
        if binary:
            row["positive_rate"] = sum(y_pred[i] == 1 for i in idx) / len(idx)
        per_group[g] = row
    result: dict[str, Any] = {"per_group": per_group, "gaps": _gaps(per_group)}
    if binary:
        result["positive_label"] = label_names[1]
        result["demographic_parity_difference"] = demographic_parity_difference(y_pred, groups, positive=1)
    return result


def format_group_table(entry: dict[str, Any]) -> list[str]:
    """The per-group table and the gaps as printable lines (``entry``: eval.json's ``groups``)."""
    binary = "demographic_parity_difference" in entry
    head = f"  {'group':<20} {'examples':>8} {'accuracy':>9} {'f1_macro':>9}" + (
        f" {'pos. rate':>9}" if binary else "")
    lines = [f"per-group metrics by '{entry['field']}' on {entry['source']}:", head]
    for name, row in entry["per_group"].items():
        lines.append(f"  {name[:20]:<20} {row['examples']:>8,} {row['accuracy']:>9.4f} {row['f1_macro']:>9.4f}"
                     + (f" {row['positive_rate']:>9.4f}" if binary else ""))
    overall = entry["overall"]
    lines.append(f"  {'(all)':<20} {overall['examples']:>8,} {overall['accuracy']:>9.4f} {overall['f1_macro']:>9.4f}")
    for metric, gap in entry["gaps"].items():
        lines.append(f"  largest {metric} gap: {gap['gap']:.4f} ({gap['highest']} - {gap['lowest']})")
    if binary:
        lines.append(f"  demographic-parity difference (predicted '{entry['positive_label']}' rate): "
                     f"{entry['demographic_parity_difference']:.4f}")
    return lines
