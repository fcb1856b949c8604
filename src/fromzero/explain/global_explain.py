"""Global explanations: token attributions averaged per class over a whole split.

For every example of class c (its gold label) the attribution toward c is computed, and each token's
attributions are pooled across examples: mean over its occurrences. The top tokens of each class (at least
``min_count`` occurrences, highest mean first) go to ``OUT/global_<split>.json`` and a bar chart
``OUT/global_<split>.png``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.explain.attributions import attribute, editable
from fromzero.explain.classifier import TextClassifier
from fromzero.explain.plots import class_tokens_png
from fromzero.progress import progress


def class_token_means(clf: TextClassifier, features: Sequence[dict], method: str, steps: int = 50,
                      batch_size: int = 16, show: bool = True) -> dict[int, dict[int, list[float]]]:
    """class -> token id -> its attributions toward that class, over ``features`` (with ``labels``)."""
    pooled: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    chunks = [features[i:i + batch_size] for i in range(0, len(features), batch_size)]
    for chunk in progress(chunks, desc=f"global {method}", unit="batch", enabled=show):
        batch = clf.batch(chunk)
        scores = attribute(clf, batch, batch["labels"], method, steps).scores
        keep = editable(clf, batch)
        for b in range(len(chunk)):
            label = int(batch["labels"][b])
            for pos in keep[b].nonzero()[:, 0].tolist():
                pooled[label][int(batch["input_ids"][b, pos])].append(float(scores[b, pos]))
    return pooled


def explain_split(clf: TextClassifier, features: Sequence[dict], split: str, method: str, out: Path,
                  top: int = 10, min_count: int = 2, steps: int = 50, show: bool = True) -> dict[str, Any]:
    """Top tokens per class of ``split``; writes the JSON and PNG, returns the JSON."""
    pooled = class_token_means(clf, features, method, steps, show=show)
    per_class: dict[str, list[dict[str, Any]]] = {}
    for k, name in enumerate(clf.labels):
        rows = [{"token": clf.tokens([t])[0], "id": t, "mean": sum(v) / len(v), "count": len(v)}
                for t, v in pooled.get(k, {}).items() if len(v) >= min_count]
        per_class[name] = sorted(rows, key=lambda r: -r["mean"])[:top]
    report = {"run": str(clf.run.path), "split": split, "method": method, "examples": len(features),
              "min_count": min_count, "top_tokens": per_class}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / f"global_{split}.json", json.dumps(report, indent=2) + "\n")
    class_tokens_png(out / f"global_{split}.png", per_class, method)
    return report
