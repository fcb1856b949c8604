"""A fine-tuning task's data and predictions: files -> features -> batches, and model -> decoded outputs.

:func:`load_task_data` reads the train / validation / test files of a task,
builds the label vocabulary from the training file (a label seen only later
is an error naming its line) and encodes every split under the truncation
policy. :func:`task_outputs` runs a model over a split and decodes its
logits into what the metrics compare (class ids and probabilities, tag
strings, answer texts; seq2seq: greedily decoded texts), as a :class:`TaskOutputs`; scoring them is the job
of ``fromzero.eval`` (it is above this layer and passes a scorer in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fromzero.data.seq2seq_data import Seq2SeqBatches, encode_seq2seq, read_seq2seq_pairs
from fromzero.data.task_data import (
    LabelVocab,
    TruncationStats,
    class_weights,
    encode_labels,
    encode_multi_labels,
    label_vocab,
    read_conll,
    read_squad,
    read_text_classification,
    regression_targets,
    tag_vocab,
)
from fromzero.data.task_encoding import (
    IGNORE_INDEX,
    Feature,
    Framing,
    SpanMap,
    TaskBatches,
    collate,
    encode_classification,
    encode_qa,
    encode_tagging,
)
from fromzero.data.tokenizers import Tokenizer
from fromzero.generation.seq2seq_batch import decode_texts
from fromzero.train.finetune_recipe import TaskConfig

SPLITS = ("train", "validation", "test")
MAX_ANSWER_TOKENS = 30  # longest predicted QA span, as in BERT's SQuAD script


@dataclass
class TaskData:
    """Encoded splits of one task; ``examples`` keep the raw rows (QA contexts, tag strings)."""

    task: TaskConfig
    vocab: LabelVocab | None
    examples: dict[str, list[Any]]
    features: dict[str, list[Feature]]
    pad_id: int
    span_maps: dict[str, list[SpanMap]] = field(default_factory=dict)
    truncation: dict[str, TruncationStats] = field(default_factory=dict)
    tokenizer: Tokenizer | None = None  # sft: generates replies; seq2seq: decodes generated ids into texts

    @property
    def num_labels(self) -> int:
        return len(self.vocab) if self.vocab is not None else 1

    def weights(self) -> list[float] | None:
        """Balanced class weights from the training labels, when the task asks for them."""
        if self.task.class_weights != "balanced" or self.vocab is None:
            return None
        if self.task.kind == "token_classification":
            ids = [y for f in self.features["train"] for y in f["labels"] if y != IGNORE_INDEX]
        else:
            ids = [f["labels"] for f in self.features["train"]]
        return class_weights(ids, len(self.vocab))

    def batches(self, split: str, batch_size: int, seed: int = 0, shuffle: bool = False,
                grad_accum: int = 1) -> TaskBatches | Seq2SeqBatches:
        if self.task.kind == "seq2seq":
            return Seq2SeqBatches(self.features[split], batch_size, pad_id=self.pad_id, seed=seed, shuffle=shuffle,
                                  grad_accum=grad_accum)
        return TaskBatches(self.features[split], batch_size, pad_id=self.pad_id, seed=seed, shuffle=shuffle,
                           grad_accum=grad_accum, token_labels=True if self.task.kind == "sft" else None)


def _read(task: TaskConfig, path: str) -> list[Any]:
    if task.kind == "token_classification":
        return read_conll(path)
    if task.kind == "span_qa":
        return read_squad(path)
    if task.kind == "seq2seq":
        return read_seq2seq_pairs(path)
    return read_text_classification(path, text_key=task.text_field, pair_key=task.pair_field,
                                    label_key=task.label_field, fmt=task.format)


def _targets(task: TaskConfig, examples: list[Any], vocab: LabelVocab | None) -> list[Any]:
    if task.problem == "regression":
        return regression_targets(examples)
    if task.problem == "multi_label":
        return encode_multi_labels(examples, vocab)
    return encode_labels(examples, vocab)


def load_task_data(task: TaskConfig, tokenizer: Tokenizer, vocab: LabelVocab | None = None,
                   splits: tuple[str, ...] = SPLITS, paths: dict[str, str] | None = None,
                   decoder_start_id: int | None = None) -> TaskData:
    """Read and encode ``splits`` (test falls back to validation); ``vocab`` None builds it from train.

    ``decoder_start_id`` (seq2seq): the model's first decoder input (null: the pad id, as T5).
    """
    if task.kind == "sft":  # conversations: their own reader and encoder (train.finetune_sft)
        from fromzero.train.finetune_sft import load_sft_data

        return load_sft_data(task, tokenizer, splits, paths)
    framing = Framing.for_tokenizer(tokenizer)
    files = paths or {"train": task.train, "validation": task.validation, "test": task.test or task.validation}
    examples = {s: _read(task, files[s]) for s in splits}
    if vocab is None and task.kind == "token_classification":
        vocab = tag_vocab(examples["train"])
    elif vocab is None and task.kind == "sequence_classification" and task.problem != "regression":
        vocab = label_vocab(examples["train"])
    data = TaskData(task, vocab, examples, {}, framing.pad_id, tokenizer=tokenizer)
    for split in splits:
        stats = data.truncation[split] = TruncationStats()
        rows = examples[split]
        if task.kind == "token_classification":
            feats = encode_tagging(rows, tokenizer, framing, task.max_len, vocab, task.truncation, stats)
        elif task.kind == "span_qa":
            feats, data.span_maps[split] = encode_qa(rows, tokenizer, framing, task.max_len, task.truncation, stats)
        elif task.kind == "seq2seq":
            start = framing.pad_id if decoder_start_id is None else decoder_start_id
            feats = encode_seq2seq(rows, tokenizer, task.max_len, task.max_target_len or task.max_len, start,
                                   task.truncation, stats)
        else:
            feats = encode_classification(rows, tokenizer, framing, task.max_len, _targets(task, rows, vocab),
                                          task.truncation, stats)
        data.features[split] = feats
    return data


@dataclass
class TaskOutputs:
    """A model's decoded predictions on one split, ready for the metric libraries.

    sequence_classification  y_true / y_pred: class ids (multi-label: 0/1 rows; regression: values),
                             scores: class probabilities (N, K)
    token_classification     y_true / y_pred: tag strings per sentence (first sub-token of each word)
    span_qa                  y_true: gold answer texts per question, y_pred: the predicted answer text
    sft                      y_true: [reference reply] per prompt, y_pred: the generated reply; prompts, groups
    seq2seq                  y_true: reference texts (as in the file), y_pred: decoded texts, sources: inputs
    """

    kind: str
    problem: str
    y_true: list[Any]
    y_pred: list[Any]
    scores: list[list[float]] | None = None
    label_names: list[str] | None = None
    prompts: list[str] | None = None  # sft: the rendered prompts answered
    groups: list[str | None] | None = None  # sft: each prompt's group (per-group metrics)
    sources: list[str] | None = None  # seq2seq: the source texts


Scorer = Callable[[TaskOutputs], dict[str, float]]


@torch.no_grad()
def _logits(model: nn.Module, data: TaskData, split: str, batch_size: int) -> list[torch.Tensor]:
    """Per-example logits (padding removed from token-level ones), in file order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    batches = data.batches(split, batch_size)
    for i in range(len(batches)):
        rows = batches.features[i * batch_size:(i + 1) * batch_size]
        batch = {k: v.to(device) for k, v in collate(rows, data.pad_id, batches.token_labels).items()}
        kwargs = {k: batch[k] for k in ("attention_mask", "token_type_ids") if k in batch}
        logits = model(batch["input_ids"], **kwargs).float().cpu()
        for row, z in zip(rows, logits, strict=True):
            out.append(z[:len(row["input_ids"])] if z.dim() == 2 and data.task.kind != "sequence_classification"
                       else z)
    model.train(was_training)
    return out


def _best_span(z: torch.Tensor, span: SpanMap) -> tuple[int, int]:
    """Highest start + end score with context_start <= start <= end < start + MAX_ANSWER_TOKENS."""
    lo, hi = span.context_start, span.context_start + len(span.offsets)
    if hi <= lo:
        return lo, lo - 1
    start, end = z[lo:hi, 0], z[lo:hi, 1]
    pair = start[:, None] + end[None, :]  # (S, S): score of span (i, j)
    i = torch.arange(hi - lo)
    valid = (i[None, :] >= i[:, None]) & (i[None, :] < i[:, None] + MAX_ANSWER_TOKENS)
    flat = int(pair.masked_fill(~valid, float("-inf")).argmax())
    return lo + flat // (hi - lo), lo + flat % (hi - lo)


def seq2seq_outputs(model: nn.Module, data: TaskData, split: str, batch_size: int = 64,
                    limit: int | None = None) -> TaskOutputs:
    """Greedy-decode the first ``limit`` (all if None) examples of ``split``; references are the raw targets."""
    rows = data.examples[split][:limit]
    ids = [f["input_ids"] for f in data.features[split][:limit]]
    hyps = decode_texts(model, data.tokenizer, ids, max_new_tokens=data.task.max_target_len or data.task.max_len,
                        batch_size=batch_size)
    return TaskOutputs(data.task.kind, data.task.problem, [r.target for r in rows], hyps,
                       sources=[r.source for r in rows])


def task_outputs(model: nn.Module, data: TaskData, split: str, batch_size: int = 64,
                 limit: int | None = None) -> TaskOutputs:
    """Run ``model`` over ``split`` and decode its predictions (see :class:`TaskOutputs`).

    ``limit`` (seq2seq): decode just the first ``limit`` examples, e.g. during training (sft reads
    ``task.eval_examples`` itself).
    """
    if data.task.kind == "sft":  # generated replies, not logits
        from fromzero.train.finetune_sft import sft_outputs

        return sft_outputs(model, data, split, batch_size, progress=split == "test")
    if data.task.kind == "seq2seq":
        return seq2seq_outputs(model, data, split, batch_size, limit)
    task, logits = data.task, _logits(model, data, split, batch_size)
    names = list(data.vocab.labels) if data.vocab is not None else None
    feats = data.features[split]
    if task.kind == "token_classification":
        y_true, y_pred = [], []
        for f, z in zip(feats, logits, strict=True):
            scored = [i for i, y in enumerate(f["labels"]) if y != IGNORE_INDEX]
            y_true.append([data.vocab.decode(f["labels"][i]) for i in scored])
            y_pred.append([data.vocab.decode(int(z[i].argmax())) for i in scored])
        return TaskOutputs(task.kind, task.problem, y_true, y_pred, label_names=names)
    if task.kind == "span_qa":
        preds = []
        for ex, span, z in zip(data.examples[split], data.span_maps[split], logits, strict=True):
            s, e = _best_span(z, span)
            preds.append(span.answer_text(ex.context, s, e))
        golds = [list(ex.answers) or [""] for ex in data.examples[split]]
        return TaskOutputs(task.kind, task.problem, golds, preds)
    z = torch.stack(logits)  # (N, K)
    y_true = [f["labels"] for f in feats]
    if task.problem == "regression":
        return TaskOutputs(task.kind, task.problem, y_true, z[:, 0].tolist())
    if task.problem == "multi_label":
        return TaskOutputs(task.kind, task.problem, y_true, (z > 0).long().tolist(), torch.sigmoid(z).tolist(), names)
    return TaskOutputs(task.kind, task.problem, y_true, z.argmax(-1).tolist(), torch.softmax(z, -1).tolist(), names)
