"""A fine-tuned model's predictions on one split, decoded into what the metrics compare (:class:`TaskOutputs`).

Logits become class ids and probabilities, tag strings (first sub-token of each word) or answer texts;
seq2seq models decode greedily into texts, SFT models answer each prompt greedily with the chat
template's stop strings. Scoring them is ``fromzero.eval.task_metrics.score_outputs``.
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.data.chat_template import get_chat_template
from fromzero.data.loader import IGNORE_INDEX
from fromzero.data.sft_data import generation_prompt
from fromzero.data.task_encoding import SpanMap, collate
from fromzero.eval.task_outputs import TaskOutputs
from fromzero.finetune.task_dataset import TaskData
from fromzero.generation.chat import greedy_replies
from fromzero.generation.seq2seq_batch import decode_texts

MAX_ANSWER_TOKENS = 30  # longest predicted QA span, as in BERT's SQuAD script


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
                    limit: int | None = None, progress: bool = False) -> TaskOutputs:
    """Decode the first ``limit`` (all if None) examples of ``split`` (greedy, or a beam as ``task.beam_size``
    says); references are the raw targets."""
    rows, task = data.examples[split][:limit], data.task
    ids = [f["input_ids"] for f in data.features[split][:limit]]
    hyps = decode_texts(model, data.tokenizer, ids, max_new_tokens=task.max_target_len or task.max_len,
                        batch_size=batch_size if task.beam_size == 1 else max(1, batch_size // task.beam_size),
                        progress=progress, beam_size=task.beam_size, alpha=task.length_penalty)
    return TaskOutputs(data.task.kind, data.task.problem, [r.target for r in rows], hyps,
                       sources=[r.source for r in rows])


def task_outputs(model: nn.Module, data: TaskData, split: str, batch_size: int = 64,
                 limit: int | None = None, progress: bool = False) -> TaskOutputs:
    """Run ``model`` over ``split`` and decode its predictions (see :class:`TaskOutputs`).

    ``limit`` (seq2seq): decode just the first ``limit`` examples, e.g. during training (sft reads
    ``task.eval_examples`` itself). ``progress`` reports generation (sft, seq2seq), e.g. over a test split.
    """
    if data.task.kind == "sft":  # generated replies, not logits
        return sft_outputs(model, data, split, batch_size, progress=progress)
    if data.task.kind == "seq2seq":
        return seq2seq_outputs(model, data, split, batch_size, limit, progress)
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


def sft_outputs(model: nn.Module, data: TaskData, split: str, batch_size: int = 64,
                progress: bool = False) -> TaskOutputs:
    """Greedy replies to ``split``'s prompts vs. the reference replies (validation: the first eval_examples)."""
    task = data.task
    convs = data.examples[split]
    if split == "validation" and task.eval_examples:
        convs = convs[:task.eval_examples]
    template = get_chat_template(task.chat_template)
    prompts = [generation_prompt(c, template) for c in convs]
    replies = greedy_replies(model, data.tokenizer, template, prompts, task.max_new_tokens, batch_size=batch_size,
                             progress=progress)
    return TaskOutputs("sft", "single_label", [[c.reference] for c in convs], replies, prompts=prompts,
                       groups=[c.group for c in convs])
