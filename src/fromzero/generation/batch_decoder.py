"""Continuous batching: many sequences decoded together, each joining and leaving at any step.

The KV cache has ``max_batch`` *slots* (rows); the live sequences hold slots
``[0, n)``. Each :meth:`BatchDecoder.step` gives every live sequence one new
token, with at most two forwards:

- sequences that joined since the last step (or whose context window filled,
  see below) are *prefilled* together: their windows right-padded into one
  forward whose cache is the slots after the live ones (``KVCache.rows``);
- the others run one *decode step* (``model.decode_step``): one token per
  row, row r written at its own position p_r and attending to keys
  ``[0, p_r]`` through an additive mask read from a table built once.

Every sequence keeps its own positions (0 at its first window token), so a
row decodes as it would alone, up to float rounding of batched matmuls. A
sequence that leaves (finished, cancelled) frees its slot at once: the last
live row's cache is copied into it, so the live rows stay contiguous and
every per-step tensor is a view, never a gather.

Context policy (unchanged from single-sequence decoding): a window that
reaches ``block_size`` tokens slides to its last ``block_size // 2`` tokens,
re-encoded from position 0 by a prefill. Without a cache (``use_cache=False``)
every step recomputes each window in one right-padded forward: the reference
the cached path is tested against.

The model provides ``config.block_size``, ``new_cache(batch, max_len)``,
``prefill(ids, lengths, cache)`` and ``decode_step(tokens, positions, cache,
span, bias)`` (``fromzero.models.GPT`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fromzero.generation.decode_options import decode_step_fn
from fromzero.generation.sampling import SamplingConfig, sample_rows


@dataclass(eq=False)
class DecodeRow:
    """One sequence being decoded; compare rows by identity."""

    window: list[int]  # tokens in its context window: prompt (tail) + generated, the newest last
    cfg: SamplingConfig
    generator: torch.Generator | None = None
    tag: Any = None  # the caller's handle (a row index, a request)
    cached: int = 0  # window tokens whose keys/values are in the cache
    generated: list[int] = field(default_factory=list)


class BatchDecoder:
    """Decodes up to ``max_batch`` sequences at once; add and remove them between steps.

    ``step_fn`` runs a decode step (default: :func:`~fromzero.generation.decode_options.decode_step_fn`).
    Call every method under ``torch.inference_mode()`` (the cache is made of inference tensors).
    """

    def __init__(self, model: nn.Module, max_batch: int, *, use_cache: bool = True, pad_id: int = 0,
                 step_fn: Callable[..., torch.Tensor] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.model, self.max_batch, self.pad_id = model, max_batch, pad_id
        self.block: int = model.config.block_size
        self.device = next(model.parameters()).device
        self.cache = model.new_cache(max_batch, self.block) if use_cache else None
        self.step_fn = step_fn or decode_step_fn(model)
        self._always_bias = getattr(self.step_fn, "always_bias", False)  # see decode_options.CompiledStep
        self.live: list[DecodeRow] = []  # row i holds cache slot i
        self.pending: list[DecodeRow] = []  # waiting for a slot, prefilled when they get one
        self._masks: torch.Tensor | None = None  # (block, block) additive: 0 where key j <= query p
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (tokens, positions) of the live rows

    def add(self, prompt: list[int], cfg: SamplingConfig, generator: torch.Generator | None = None,
            tag: Any = None) -> DecodeRow:
        """Queue a sequence (a non-empty prompt; its last ``block_size - 1`` tokens are kept); it joins at
        the next step that has a free slot, in order of arrival."""
        if not prompt:
            raise ValueError("a prompt is empty: give at least one token (e.g. a bos or eos token)")
        row = DecodeRow(list(prompt[-max(1, self.block - 1):]), cfg, generator, tag)
        self.pending.append(row)
        return row

    def remove(self, row: DecodeRow) -> None:
        """Drop a sequence now (finished or cancelled); its slot is free for the next step."""
        if row in self.pending:
            self.pending.remove(row)
            return
        if row not in self.live:  # already gone (a step that failed half-way leaves rows in neither list)
            return
        self._last = None
        slot, last = self.live.index(row), len(self.live) - 1
        if slot != last and self.cache is not None:  # keep live rows contiguous: move the last one here
            self.cache.copy_row(last, slot, self.live[last].cached)
        self.live[slot] = self.live[last]
        self.live.pop()

    def __len__(self) -> int:
        """Sequences live or waiting."""
        return len(self.live) + len(self.pending)

    def step(self) -> list[tuple[DecodeRow, int]]:
        """One new token for every live sequence (joining ones first take free slots): (row, token) pairs."""
        for row in [r for r in self.live if len(r.window) >= self.block]:  # window full: slide, prefill again
            self.remove(row)
            row.window, row.cached = row.window[-(self.block // 2):], 0
            self.pending.insert(0, row)
        decoding = self.live
        joining = self.pending[:self.max_batch - len(decoding)]
        del self.pending[:len(joining)]
        parts = []
        if self.cache is None:
            parts.append(self._prefill(decoding + joining, None))
        else:
            if decoding:
                parts.append(self._decode(decoding))
            if joining:
                parts.append(self._prefill(joining, self.cache.rows(len(decoding), len(decoding) + len(joining))))
        self.live = decoding + joining
        if not self.live:
            return []
        logits = parts[0] if len(parts) == 1 else torch.cat(parts)
        sampled = sample_rows(logits, [r.cfg for r in self.live], [r.generator for r in self.live])
        tokens = sampled.tolist()  # the one host sync per step
        for row, token in zip(self.live, tokens, strict=True):
            row.window.append(token)
            row.generated.append(token)
        if not joining and self._last is not None:  # same rows next step: feed these tensors back, no rebuild
            self._last = (sampled, self._last[1] + 1)
        else:
            self._last = None
        return list(zip(self.live, tokens, strict=True))

    def _prefill(self, rows: list[DecodeRow], cache: Any) -> torch.Tensor:
        lengths = [len(r.window) for r in rows]
        width = max(lengths)
        ids = torch.tensor([r.window + [self.pad_id] * (width - len(r.window)) for r in rows], device=self.device)
        logits = self.model.prefill(ids, torch.tensor(lengths, device=self.device), cache)  # (k, V)
        for row, n in zip(rows, lengths, strict=True):
            row.cached = n
        return logits

    def _decode(self, rows: list[DecodeRow]) -> torch.Tensor:
        places = [r.cached for r in rows]  # where each row's newest token goes
        span = max(places) + 1
        if self._last is None:  # rows joined or left: build the step's inputs once
            self._last = (torch.tensor([r.window[-1] for r in rows], device=self.device),
                          torch.tensor(places, device=self.device))
        tokens, positions = self._last
        bias = None
        if min(places) != span - 1 or self._always_bias:  # rows of different lengths: row r sees keys [0, p_r]
            bias = self._mask_table()[positions, :span].view(len(rows), 1, 1, span)
        logits = self.step_fn(tokens, positions, self.cache, span, bias)
        for row in rows:
            row.cached += 1
        return logits

    def _mask_table(self) -> torch.Tensor:
        if self._masks is None:
            dtype = self.cache.keys[0].dtype
            allowed = torch.ones(self.block, self.block, dtype=torch.bool, device=self.device).tril()
            self._masks = torch.zeros(self.block, self.block, dtype=dtype, device=self.device).masked_fill(
                ~allowed, float("-inf"))
        return self._masks
