"""Continuous batching with text out: each sequence of a :class:`BatchDecoder` streams text deltas.

What a server runs: sequences join whenever a request arrives and leave as
soon as they finish (stop string, eos, their own ``max_new_tokens``) or are
cancelled, so the others never wait for them. Each sequence keeps its own
:class:`~fromzero.generation.generate.TextRow` (incremental decoding, stop
strings held back) and, if seeded, its own ``torch.Generator``: its tokens
do not depend on what else is in the batch (see ``sample_rows``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fromzero.generation.batch_decoder import BatchDecoder, DecodeRow
from fromzero.generation.decode_options import DecodeOptions, decode_step_fn
from fromzero.generation.generate import Generation, TextRow, fit_prompt
from fromzero.generation.sampling import SamplingConfig


@dataclass(eq=False)
class TextSequence:
    """One generation in a :class:`TextBatch`; ``tag`` is the caller's (e.g. a request and choice index)."""

    row: DecodeRow
    text: TextRow
    tag: Any = None

    @property
    def done(self) -> bool:
        return self.text.done

    @property
    def generation(self) -> Generation:
        """The finished generation (text, token ids, finish reason, counts)."""
        return self.text.result()


class TextBatch:
    """Up to ``max_batch`` generations decoded together; add and cancel them between steps.

    Call :meth:`step` under ``torch.inference_mode()`` with the model in eval mode (the scheduler's worker
    does); ``decode`` turns token ids into text (the tokenizer's).
    """

    def __init__(self, model: nn.Module, decode: Callable[[list[int]], str], eos_id: int | None, max_batch: int,
                 *, pad_id: int = 0, options: DecodeOptions | None = None) -> None:
        self.model, self.decode, self.eos_id = model, decode, eos_id
        self.device = next(model.parameters()).device
        self.decoder = BatchDecoder(model, max_batch, pad_id=pad_id, step_fn=decode_step_fn(model, options))

    def __len__(self) -> int:
        """Generations running or waiting for a slot."""
        return len(self.decoder)

    def add(self, prompt: list[int], cfg: SamplingConfig, tag: Any = None) -> TextSequence:
        """Queue a generation of a (non-empty) prompt; it joins at the next step with a free slot.

        The prompt keeps its last ``block_size - 1`` tokens. Raises ValueError for an empty prompt.
        """
        ids = fit_prompt(prompt, self.model.config.block_size)
        generator = None if cfg.seed is None else torch.Generator(device=self.device).manual_seed(cfg.seed)
        seq = TextSequence(self.decoder.add(ids, cfg, generator), TextRow(self.decode, cfg.stop, self.eos_id,
                                                                          prompt_tokens=len(ids)), tag)
        seq.row.tag = seq
        return seq

    def cancel(self, seq: TextSequence) -> None:
        """Stop a generation now; its slot is free for the next step."""
        if not seq.done:
            self.decoder.remove(seq.row)

    def step(self) -> list[tuple[TextSequence, str]]:
        """One token for every running generation: (sequence, text delta) pairs, the delta maybe empty.

        A sequence that finished in this step (``seq.done``) has left the batch already.
        """
        out = []
        for row, token in self.decoder.step():
            seq: TextSequence = row.tag
            delta = seq.text.push(token)
            if not seq.done and len(row.generated) >= row.cfg.max_new_tokens:
                delta += seq.text.finish("length")
            if seq.done:
                self.decoder.remove(row)
            out.append((seq, delta))
        return out
