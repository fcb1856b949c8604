"""Decode many encoder inputs to texts in length-sorted batches (validation and test of seq2seq fine-tunes).

Inputs are sorted by length before batching so each padded batch wastes
little compute, decoded greedily (or as ``cfg`` says) with
:func:`fromzero.generation.seq2seq.generate_seq2seq` and the KV cache, or
with beam search (``beam_size`` > 1, GNMT length penalty ``alpha``), and
the outputs are returned in the original order. Each output stops at the
first eos (excluded); special tokens are dropped from the text. Padding does
not change a row's result beyond float rounding: the encoder masks it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from fromzero.data.tokenizers import Tokenizer
from fromzero.generation.sampling import SamplingConfig
from fromzero.generation.seq2seq import generate_seq2seq
from fromzero.generation.seq2seq_beam import beam_search_seq2seq
from fromzero.progress import progress as progress_bar


def decode_texts(model: nn.Module, tokenizer: Tokenizer, input_ids: Sequence[Sequence[int]], *,
                 max_new_tokens: int, batch_size: int = 64, cfg: SamplingConfig | None = None,
                 progress: bool = False, beam_size: int = 1, alpha: float = 0.0) -> list[str]:
    """One decoded text per encoder input (ids already end with eos); greedy unless ``cfg`` or ``beam_size``
    says otherwise."""
    cfg = cfg or SamplingConfig(max_new_tokens=max_new_tokens, greedy=True)
    eos = tokenizer.eos_id if tokenizer.eos_id is not None else model.config.eos_id
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else model.config.pad_id
    order = sorted(range(len(input_ids)), key=lambda i: len(input_ids[i]))
    texts: list[str] = [""] * len(input_ids)
    starts = range(0, len(order), batch_size)
    for start in progress_bar(starts, desc="decoding", unit="batch", enabled=progress, leave=False):
        chunk = order[start:start + batch_size]
        if beam_size > 1:
            out = beam_search_seq2seq(model, [list(input_ids[i]) for i in chunk], beam_size=beam_size,
                                      max_new_tokens=max_new_tokens, eos_id=eos, pad_id=pad,
                                      decoder_start_id=model.config.decoder_start_id, alpha=alpha)
            for i, ids in zip(chunk, out, strict=True):
                texts[i] = tokenizer.decode(ids, skip_special_tokens=True).strip()
            continue
        out = [[] for _ in chunk]
        for step in generate_seq2seq(model, [list(input_ids[i]) for i in chunk], cfg, eos_id=eos, pad_id=pad,
                                     decoder_start_id=model.config.decoder_start_id):
            for row, token in zip(out, step, strict=True):
                if token is not None and token != eos:
                    row.append(token)
        for i, ids in zip(chunk, out, strict=True):
            texts[i] = tokenizer.decode(ids, skip_special_tokens=True).strip()
    return texts

