"""Zero-shot classification with sentence embeddings: no training, only a description of each label.

    pred(x) = argmax_y cos(e(x), e(description_y))

``e`` is a BERT run's unit-norm mean-pooled embedding (:mod:`fromzero.eval.sentence_embeddings`; the
imported all-MiniLM-L6-v2 was trained for exactly this similarity). The labels file is YAML, one
``label: description`` per class::

    HUM: a question asking for a person or a group of people
    LOC: a question asking for a place: a city, country, mountain or address

Every label in the data must have a description (else a one-line DataError naming the row). Scores are
the project's classification metrics (:func:`fromzero.eval.metrics.classification_metrics`), over every
described label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fromzero.data.task_data import read_text_classification
from fromzero.errors import DataError
from fromzero.eval.metrics import classification_metrics
from fromzero.eval.sentence_embeddings import load_encoder_run, sentence_embeddings
from fromzero.runs import Run


def read_label_descriptions(path: str | Path) -> dict[str, str]:
    """``{label: description}`` from a YAML mapping, file order kept; every fault names the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labels file not found; give a YAML file of 'label: description' lines")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); a labels file is YAML text") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise DataError(f"{path}{line}: invalid YAML: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a YAML mapping of 'label: description' lines, got "
                        f"{'nothing' if not data else type(data).__name__}")
    out = {}
    for label, text in data.items():
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: label {label!r}: the description must be non-empty text, got {text!r}")
        out[str(label)] = text.strip()
    if len(out) < 2:
        raise DataError(f"{path}: one label only; zero-shot classification chooses among two or more")
    return out


def zero_shot_scores(run: Run, texts: Sequence[str], descriptions: Sequence[str],
                     progress: bool = True) -> np.ndarray:
    """(N, K) cosine similarities of each text to each label description."""
    labels = sentence_embeddings(run, descriptions, progress=False)  # (K, C), unit norm
    inputs = sentence_embeddings(run, texts, progress=progress, desc="zero-shot")  # (N, C), unit norm
    return inputs @ labels.T


def evaluate_zero_shot(run_dir: str | Path, data: str | Path, labels_file: str | Path, *, text_field: str = "text",
                       label_field: str = "label", progress: bool = True) -> dict[str, Any]:
    """Classify every row of ``data`` by its nearest description; the report (metrics, counts, confusions)."""
    descriptions = read_label_descriptions(labels_file)
    examples = read_text_classification(data, text_key=text_field, label_key=label_field)
    names = list(descriptions)
    for ex in examples:
        if not isinstance(ex.label, str) or ex.label not in descriptions:
            raise DataError(f"{ex.where}: label {ex.label!r} has no description in {labels_file}; add "
                            f"'{ex.label}: <description>' there (described: {', '.join(names)})")
    run = load_encoder_run(str(run_dir), "zero-shot RUN")
    scores = zero_shot_scores(run, [ex.text for ex in examples], [descriptions[n] for n in names], progress)
    pred = scores.argmax(1).tolist()
    gold = [names.index(ex.label) for ex in examples]
    metrics = classification_metrics(gold, pred, labels=list(range(len(names))))
    per_label = {n: {"support": gold.count(i), "predicted": pred.count(i),
                     "correct": sum(g == p == i for g, p in zip(gold, pred, strict=True))}
                 for i, n in enumerate(names)}
    return {"method": "zero-shot sentence embeddings (cosine to label descriptions)", "run": str(run_dir),
            "data": str(data), "labels_file": str(labels_file), "examples": len(examples),
            "labels": descriptions, "metrics": metrics, "per_label": per_label}
