"""k-shot prompting of a causal language model (GPT-3's in-context learning), scored, not generated.

A prompt is k solved examples and the query, each written with one template::

    Question: {text}\\nType: {label}\\n\\n     (x k, drawn with a seed from the training split)
    Question: {query}\\nType:                  (the template up to {label}; its trailing spaces move
                                                into the continuation, as lm-evaluation-harness does)

Each candidate label y is scored by the model's log-likelihood of its tokens after the prompt,

    score(y) = sum_j log p(y_j | prompt, y_<j),

and the best-scoring label is the prediction (no free generation, so every answer is a label). A
prompt longer than the model's context is cut from the left (the oldest shots go first). The k
shots are drawn afresh for each query from one seeded generator, so a run is reproducible and no single
unlucky draw decides the accuracy.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fromzero.data.task_data import TextExample, read_text_classification
from fromzero.errors import ConfigError, DataError
from fromzero.eval.metrics import classification_metrics
from fromzero.models import family_of
from fromzero.progress import progress as progress_bar
from fromzero.runs import Run, load_run

DEFAULT_TEMPLATE = "Question: {text}\nType: {label}\n\n"
CAUSAL_FAMILIES = ("gpt", "rnn")


@dataclass(frozen=True)
class PromptTemplate:
    """A template with ``{text}`` before ``{label}``; ``head`` is the part before ``{label}``."""

    template: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        t = self.template
        if t.count("{text}") != 1 or t.count("{label}") != 1 or t.index("{text}") > t.index("{label}"):
            raise ConfigError(f"--template: {t!r} must hold {{text}} once and then {{label}} once, e.g. "
                              f"{DEFAULT_TEMPLATE!r}")

    def shot(self, text: str, label: str) -> str:
        return self.template.replace("{text}", text).replace("{label}", label)

    def query(self, text: str) -> tuple[str, str]:
        """(context, continuation prefix) for a query: the head with its trailing spaces moved out."""
        head = self.template[:self.template.index("{label}")].replace("{text}", text)
        stripped = head.rstrip(" ")
        return stripped, head[len(stripped):]


def build_prompt(template: PromptTemplate, shots: Sequence[tuple[str, str]], query: str) -> tuple[str, str]:
    """(context, continuation prefix): the k solved shots, then the query's head."""
    context, space = template.query(query)
    return "".join(template.shot(t, y) for t, y in shots) + context, space


def label_log_likelihoods(model: torch.nn.Module, context: list[int], continuations: Sequence[list[int]],
                          max_len: int | None = None) -> torch.Tensor:
    """(K,) sum of log p(continuation tokens | context) per continuation, all K in one padded batch.

    Each row is context + continuation, cut from the left to ``max_len`` tokens; right padding is harmless
    under causal attention (pads come after every scored position).
    """
    rows = []
    for cont in continuations:
        row = (context + cont)[-max_len:] if max_len else context + cont
        if len(cont) >= len(row):
            raise ConfigError(f"a label of {len(cont)} tokens leaves no prompt within the model's context "
                              f"({max_len} tokens); use shorter labels")
        rows.append(row)
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])  # (K, T)
    with torch.inference_mode():
        logp = F.log_softmax(model(ids).float(), dim=-1)  # (K, T, V)
    scores = []
    for j, (row, cont) in enumerate(zip(rows, continuations, strict=True)):
        pos = torch.arange(len(row) - len(cont), len(row))  # the continuation's positions
        scores.append(logp[j, pos - 1, torch.tensor(cont)].sum())  # each predicted by the previous position
    return torch.stack(scores)


def load_causal_run(path: str | Path) -> Run:
    """A language-model run whose ``model(ids)`` gives next-token logits (gpt or rnn, not a fine-tune)."""
    run = load_run(path)
    try:
        family = family_of(run.model_config).name
    except ValueError:
        family = None
    if run.tokenizer is None or run.info is not None or family not in CAUSAL_FAMILIES:
        raise ConfigError(f"few-shot: {path} is not a pretrained language-model run ({' or '.join(CAUSAL_FAMILIES)});"
                          " pretrain one with `fromzero pretrain recipes/quickstart.yaml`")
    return run


def _encode(run: Run, text: str, what: str) -> list[int]:
    ids = run.tokenizer.encode(text)
    if not ids:
        raise DataError(f"few-shot: {what} {text!r} encodes to no tokens with {run.path}'s tokenizer")
    return ids


def few_shot_predictions(run: Run, train: Sequence[TextExample], queries: Sequence[TextExample],
                         labels: Sequence[str], k: int, seed: int = 0, template: PromptTemplate | None = None,
                         progress: bool = True) -> list[int]:
    """The index into ``labels`` of each query's best-scoring label with k shots from ``train``."""
    template = template or PromptTemplate()
    if k > len(train):
        raise ConfigError(f"--k: {k} shots but the training file holds {len(train)} examples; lower k")
    rng = random.Random(seed)
    max_len = getattr(run.model_config, "block_size", None)
    run.model.eval()
    preds = []
    for ex in progress_bar(queries, total=len(queries), desc=f"{k}-shot", unit="question", enabled=progress):
        shots = [(s.text, str(s.label)) for s in rng.sample(list(train), k)]
        context, space = build_prompt(template, shots, ex.text)
        conts = [_encode(run, space + y, "label") for y in labels]
        scores = label_log_likelihoods(run.model, _encode(run, context, "prompt"), conts, max_len)
        preds.append(int(scores.argmax()))
    return preds


def evaluate_few_shot(run_dir: str | Path, data: str | Path, train: str | Path, ks: Sequence[int], *, seed: int = 0,
                      template: str = DEFAULT_TEMPLATE, limit: int | None = None, text_field: str = "text",
                      label_field: str = "label", progress: bool = True) -> dict[str, Any]:
    """Accuracy and macro-F1 for each k in ``ks``; the labels are those of the training file, sorted."""
    prompt = PromptTemplate(template)
    train_rows = read_text_classification(train, text_key=text_field, label_key=label_field)
    queries = read_text_classification(data, text_key=text_field, label_key=label_field)[:limit]
    labels = sorted({str(ex.label) for ex in train_rows})
    for ex in queries:
        if str(ex.label) not in labels:
            raise DataError(f"{ex.where}: label {ex.label!r} never occurs in {train}; the candidates are "
                            f"{', '.join(labels)}")
    run = load_causal_run(run_dir)
    gold = [labels.index(str(ex.label)) for ex in queries]
    rows = {}
    for k in ks:
        pred = few_shot_predictions(run, train_rows, queries, labels, k, seed, prompt, progress)
        metrics = classification_metrics(gold, pred, labels=list(range(len(labels))))
        rows[str(k)] = {"accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"],
                        "predicted": {y: pred.count(i) for i, y in enumerate(labels)}}
    return {"method": "k-shot prompting, labels scored by log-likelihood", "run": str(run_dir), "data": str(data),
            "train": str(train), "examples": len(queries), "labels": labels, "template": template, "seed": seed,
            "k": rows}
