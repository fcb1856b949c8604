"""Sequence-to-sequence task data: source/target pairs -> encoder and decoder features -> padded batches.

Files: ``.tsv`` lines ``source<TAB>target`` (``task_data.read_tsv_pairs``) or
``.jsonl`` rows ``{"source": ..., "target": ...}``.

One pair becomes (T5 convention, Raffel et al. 2019)

    input_ids          source tokens + [eos]                   encoder input, at most max_len
    labels             target tokens + [eos]                   what the decoder predicts, at most max_target_len
    decoder_input_ids  [start] + labels[:-1]                   teacher forcing: "shift right"

``start`` is the model's ``decoder_start_id`` (T5: the pad id). Batches pad
``input_ids`` and ``decoder_input_ids`` with the pad id and ``labels`` with
-100, so padding is never scored. Targets are right-padded: every pad comes
after the row's real tokens, so the decoder's causal mask alone keeps the
real positions exact and no decoder attention mask is needed.

Over-long sources and targets follow the truncation policy (``truncate``:
keep the first tokens, then eos; ``error``: a DataError naming file:line). A
pair counts once in :class:`TruncationStats` (truncated if either side was cut).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from fromzero.data.task_data import TextPair, iter_jsonl_objects, read_tsv_pairs
from fromzero.data.task_encoding import IGNORE_INDEX, TaskBatches
from fromzero.data.tokenizers import Tokenizer
from fromzero.data.truncation import TruncationPolicy, TruncationStats
from fromzero.errors import ConfigError, DataError

Feature = dict[str, list[int]]


def read_jsonl_pairs(path: str | Path, *, source_key: str = "source", target_key: str = "target") -> list[TextPair]:
    """Read ``{"source": ..., "target": ...}`` JSON lines (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    pairs = []
    for row, where in iter_jsonl_objects(path):
        if not all(isinstance(row.get(k), str) and row[k].strip() for k in (source_key, target_key)):
            raise DataError(f"{where}: expected non-empty string fields {source_key!r} and {target_key!r}")
        pairs.append(TextPair(row[source_key].strip(), row[target_key].strip(), where))
    if not pairs:
        raise DataError(f"{path}: no pairs found; the file is empty or holds only blank lines")
    return pairs


def read_seq2seq_pairs(path: str | Path, reverse: bool = False) -> list[TextPair]:
    """Source/target pairs from a ``.jsonl`` file, else from ``source<TAB>target`` lines; ``reverse`` swaps
    the two sides (train the opposite direction, e.g. es -> en, from the same files)."""
    pairs = read_jsonl_pairs(path) if Path(path).suffix == ".jsonl" else read_tsv_pairs(path)
    return [TextPair(p.target, p.source, p.where) for p in pairs] if reverse else pairs


def _fit(ids: list[int], budget: int, policy: TruncationPolicy, where: str, side: str) -> tuple[list[int], int]:
    """(ids cut to ``budget``, tokens dropped); ``error`` raises naming the line and the side."""
    if len(ids) <= budget:
        return ids, 0
    if policy == "error":
        key = "max_len" if side == "source" else "max_target_len"
        raise DataError(f"{where}: the {side} has {len(ids)} tokens, over the limit of {budget} (+ eos); shorten "
                        f"it, raise task.{key}, or set truncation: truncate")
    return ids[:budget], len(ids) - budget


def encode_seq2seq(pairs: Sequence[TextPair], tokenizer: Tokenizer, max_len: int, max_target_len: int,
                   decoder_start_id: int, policy: TruncationPolicy = "truncate",
                   stats: TruncationStats | None = None) -> list[Feature]:
    """Features ``input_ids``, ``labels`` and ``decoder_input_ids`` (see the module docstring)."""
    eos = tokenizer.eos_id
    if eos is None:
        raise DataError("the tokenizer has no end-of-text token (</s>, <eos>, <|endoftext|>) to close sequences")
    for key, value in (("max_len", max_len), ("max_target_len", max_target_len)):
        if value < 2:
            raise ConfigError(f"task.{key}: {value} leaves no room for text before eos; raise it")
    sources = tokenizer.encode_batch([p.source for p in pairs])
    targets = tokenizer.encode_batch([p.target for p in pairs])
    features = []
    for pair, src, tgt in zip(pairs, sources, targets, strict=True):
        src, cut_s = _fit(list(src), max_len - 1, policy, pair.where, "source")
        tgt, cut_t = _fit(list(tgt), max_target_len - 1, policy, pair.where, "target")
        if stats is not None:
            stats.seen += 1
            stats.truncated += int(cut_s + cut_t > 0)
            stats.tokens_dropped += cut_s + cut_t
        labels = tgt + [eos]
        features.append({"input_ids": src + [eos], "labels": labels,
                         "decoder_input_ids": [decoder_start_id, *labels[:-1]]})
    return features


def collate_seq2seq(rows: Sequence[Feature], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask`` (B, S) and ``decoder_input_ids``, ``labels`` (B, T), right-padded."""
    S = max(len(r["input_ids"]) for r in rows)
    T = max(len(r["labels"]) for r in rows)

    def pad(key: str, width: int, fill: int) -> torch.Tensor:
        return torch.tensor([r[key] + [fill] * (width - len(r[key])) for r in rows], dtype=torch.long)

    return {"input_ids": pad("input_ids", S, pad_id),
            "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * (S - len(r["input_ids"]))
                                            for r in rows], dtype=torch.long),
            "decoder_input_ids": pad("decoder_input_ids", T, pad_id), "labels": pad("labels", T, IGNORE_INDEX)}


class Seq2SeqBatches(TaskBatches):
    """Padded seq2seq batches in ``task_encoding.TaskBatches``' order (a pure function of seed, step,
    micro); only the collation differs: encoder and decoder sides pad separately."""

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        return collate_seq2seq([self.features[i] for i in self._indices(step, micro)], self.pad_id)
