"""Local explanations of a text classifier: attributions and attention maps for given inputs, written out.

    OUT/attributions.json   per input: text, tokens, scores per class, predicted and target class, each
                            method's per-token attribution (IG with its completeness gap)
    OUT/attributions.html   the tokens coloured by each method
    OUT/attention/input{i}_{layer}.png, OUT/attention.html   attention heatmaps per layer and head
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fromzero.atomic import write_text
from fromzero.explain.attention_maps import capture_attention
from fromzero.explain.attributions import METHODS, attribute
from fromzero.explain.classifier import TextClassifier
from fromzero.explain.html import attention_page, attributions_page
from fromzero.explain.plots import attention_png
from fromzero.progress import progress

ATTENTION = "attention"


def _one(clf: TextClassifier, text: str, methods: Sequence[str], target: int | None, steps: int) -> dict[str, Any]:
    feature = clf.encode(text)
    batch = clf.batch([feature])
    with torch.no_grad():
        scores = clf.scores(clf.logits(batch))[0]
    predicted = int(scores.argmax())
    goal = torch.tensor([predicted if target is None else target])
    record: dict[str, Any] = {
        "text": text, "tokens": clf.tokens(feature["input_ids"]), "input_ids": feature["input_ids"],
        "scores": {name: float(s) for name, s in zip(clf.labels, scores, strict=True)},
        "predicted": clf.labels[predicted], "target": clf.labels[int(goal)], "attributions": {}}
    for method in (m for m in methods if m in METHODS):
        result = attribute(clf, batch, goal, method, steps)
        record["attributions"][method] = [round(float(v), 6) for v in result.scores[0]]
        if result.delta is not None:
            record["ig_completeness_gap"] = float(result.delta[0])
    return record


def _attention(clf: TextClassifier, record: dict[str, Any], index: int, out: Path) -> dict[str, str]:
    batch = clf.batch([{"input_ids": record["input_ids"],
                        "token_type_ids": clf.encode(record["text"])["token_type_ids"]}])
    with capture_attention(clf.model) as maps, torch.no_grad():
        clf.logits(batch)
    pngs = {}
    for layer, weights in maps.items():
        name = f"input{index}_{layer.replace('.', '_')}.png"
        attention_png(out / ATTENTION / name, weights[0].numpy(), record["tokens"], f"{layer} (input {index})")
        pngs[layer] = f"{ATTENTION}/{name}"
    return pngs


def explain_texts(clf: TextClassifier, texts: Sequence[str], methods: Sequence[str], out: Path,
                  target: int | None = None, steps: int = 50, show: bool = True) -> dict[str, Any]:
    """Explain each text with ``methods`` (attribution methods and/or ``attention``); returns the JSON written."""
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, text in enumerate(progress(texts, desc="explaining", unit="input", enabled=show)):
        record = _one(clf, text, methods, target, steps)
        if ATTENTION in methods:
            record["attention_png"] = _attention(clf, record, i, out)
        records.append(record)
    report = {"run": str(clf.run.path), "methods": list(methods), "ig_steps": steps, "inputs": records}
    if any(m in METHODS for m in methods):
        write_text(out / "attributions.json", json.dumps(report, indent=2) + "\n")
        write_text(out / "attributions.html", attributions_page(str(clf.run.path), records))
    if ATTENTION in methods:
        write_text(out / "attention.html", attention_page(str(clf.run.path), records))
    return report
