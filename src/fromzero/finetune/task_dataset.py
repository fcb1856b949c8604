"""A fine-tuning task's data: files -> features -> batches, for every task kind.

:func:`load_task_data` reads the train / validation / test files of a task,
builds the label vocabulary from the training file (a label seen only later
is an error naming its line), runs sequence-classification texts through
``task.preprocess`` (:mod:`fromzero.data.preprocessing`) and encodes every split under the truncation
policy. SFT conversations are rendered with their chat template; validation
and test features always score replies only, whatever ``task.prompt_loss``
says for training, so the validation loss of a ``prompt_loss: true``
ablation is comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from fromzero.data.chat_template import get_chat_template
from fromzero.data.labels import LabelVocab, class_weights
from fromzero.data.preprocessing import PreprocessStats, preprocess_examples
from fromzero.data.seq2seq_data import Seq2SeqBatches, encode_seq2seq, read_seq2seq_pairs
from fromzero.data.sft_data import SFTTruncationStats, encode_conversations, read_sft
from fromzero.data.task_data import (
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
    encode_classification,
    encode_qa,
    encode_tagging,
)
from fromzero.data.tokenizers import Tokenizer
from fromzero.data.truncation import TruncationStats
from fromzero.finetune.recipe import TaskConfig

SPLITS = ("train", "validation", "test")


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
    preprocess: dict[str, PreprocessStats] = field(default_factory=dict)  # task.preprocess: texts per split

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
        group = self.task.group_by_length
        if self.task.kind == "seq2seq":
            return Seq2SeqBatches(self.features[split], batch_size, pad_id=self.pad_id, seed=seed, shuffle=shuffle,
                                  grad_accum=grad_accum, group_by_length=group)
        return TaskBatches(self.features[split], batch_size, pad_id=self.pad_id, seed=seed, shuffle=shuffle,
                           grad_accum=grad_accum, token_labels=True if self.task.kind == "sft" else None,
                           group_by_length=group)


def _read(task: TaskConfig, path: str, stats: PreprocessStats | None = None) -> list[Any]:
    if task.kind == "token_classification":
        return read_conll(path)
    if task.kind == "span_qa":
        return read_squad(path)
    if task.kind == "seq2seq":
        return read_seq2seq_pairs(path, reverse=task.reverse)
    rows = read_text_classification(path, text_key=task.text_field, pair_key=task.pair_field,
                                    label_key=task.label_field, fmt=task.format)
    return preprocess_examples(rows, task.preprocess, stats)  # task.preprocess: the recipe's text steps


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
    if task.kind == "sft":  # conversations: their own reader and encoder
        return load_sft_data(task, tokenizer, splits, paths)
    framing = Framing.for_tokenizer(tokenizer)
    files = paths or {"train": task.train, "validation": task.validation, "test": task.test or task.validation}
    prep = {s: PreprocessStats() for s in splits} if task.preprocess else {}
    examples = {s: _read(task, files[s], prep.get(s)) for s in splits}
    if vocab is None and task.kind == "token_classification":
        vocab = tag_vocab(examples["train"])
    elif vocab is None and task.kind == "sequence_classification" and task.problem != "regression":
        vocab = label_vocab(examples["train"])
    data = TaskData(task, vocab, examples, {}, framing.pad_id, tokenizer=tokenizer, preprocess=prep)
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


def load_sft_data(task: TaskConfig, tokenizer: Tokenizer, splits: tuple[str, ...],
                  paths: dict[str, str] | None = None) -> TaskData:
    """Read and encode SFT conversations; training features follow ``task.prompt_loss``, the others never."""
    template = get_chat_template(task.chat_template)
    files = paths or {"train": task.train, "validation": task.validation, "test": task.test or task.validation}
    examples = {s: read_sft(files[s]) for s in splits}
    pad = next(i for i in (tokenizer.pad_id, tokenizer.eos_id, 0) if i is not None)  # padding is never scored
    data = TaskData(task, None, examples, {}, pad, tokenizer=tokenizer)
    for split in splits:
        stats = data.truncation[split] = SFTTruncationStats()
        data.features[split] = encode_conversations(examples[split], tokenizer, template, task.max_len,
                                                    prompt_loss=task.prompt_loss and split == "train",
                                                    policy=task.truncation, stats=stats)
    return data


def decoder_start_id(model: nn.Module) -> int | None:
    """An encoder-decoder's first decoder input id (None for encoder-only and decoder-only models)."""
    return getattr(getattr(model, "config", None), "decoder_start_id", None)
