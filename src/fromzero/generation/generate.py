"""Autoregressive decoding: KV-cache token streaming, text streaming and stop strings.

With a KV cache, one *prefill* forward over the prompt fills the cache and
gives the first new token; every later token costs one forward over itself
(O(t) attention instead of recomputing all t positions). Without the cache,
each step recomputes the whole sequence: slower, but the plain reference.

A batch of prompts is decoded by :class:`~fromzero.generation.batch_decoder.BatchDecoder`:
each prompt is one row of a slot-based KV cache with its own length and
positions (0 at its first token), prompts of different lengths are
right-padded in one prefill forward, and a row that produced eos leaves the
batch. So a row decodes exactly as it would alone (up to float rounding of
batched matmuls), and with a seed each row draws from its own generator
seeded with it: a row samples the same tokens alone or in a batch.

Context policy: a prompt longer than ``block_size - 1`` tokens keeps its last
``block_size - 1`` tokens (truncated from the left). When a row's window
fills the context, it slides: the row continues from its last
``block_size // 2`` tokens (re-encoded from position 0 by one prefill), so
``max_new_tokens`` may exceed the context. The cached and uncached paths
slide at the same steps, so they still agree token for token.
Prompts must not be empty; to generate from nothing, feed a bos/eos token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, overload

import torch
from torch import nn

from fromzero.generation.batch_decoder import BatchDecoder
from fromzero.generation.decode_options import DecodeOptions, decode_step_fn
from fromzero.generation.sampling import SamplingConfig

FinishReason = Literal["stop", "length", "eos"]


class TextCodec(Protocol):
    """What generation needs from a tokenizer: text <-> ids and the end/pad ids (``fromzero.data.Tokenizer``
    satisfies it; named apart from that class so the two are never confused)."""

    @property
    def eos_id(self) -> int | None: ...

    @property
    def pad_id(self) -> int | None: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


def fit_prompt(prompt: Sequence[int], block_size: int, index: int = 0) -> list[int]:
    """Check a prompt and keep its last ``block_size - 1`` tokens, leaving room for one new token."""
    if len(prompt) == 0:
        raise ValueError(f"prompt {index} is empty: give at least one token (e.g. a bos or eos token)")
    return list(prompt[-max(1, block_size - 1):])


def generate_tokens(model: nn.Module, prompts: list[list[int]], cfg: SamplingConfig, *,
                    use_cache: bool = True, eos_id: int | None = None, pad_id: int = 0,
                    options: DecodeOptions | None = None) -> Iterator[list[int | None]]:
    """Generate from a batch of token-id prompts, yielding one step at a time.

    Each step yields a list with the new token of every row, or None for a row
    that already produced ``eos_id`` (the eos token itself is yielded once).
    Stops after ``cfg.max_new_tokens`` steps or when every row has finished
    (a full context slides, see the module docstring). The model runs
    in eval mode and inference mode; its previous mode is restored at the end.
    ``options`` picks speed options of the cached path (:class:`DecodeOptions`; the
    uncached path ignores them). Raises ValueError (at call time) for an empty
    prompt list or an empty prompt.
    """
    if not prompts:
        raise ValueError("generate_tokens needs at least one prompt, got an empty list")
    block = model.config.block_size
    rows = [fit_prompt(p, block, i) for i, p in enumerate(prompts)]
    return _decode(model, rows, cfg, use_cache, eos_id, pad_id, options)


class EosTracker:
    """Which rows of a batch have produced eos: later steps yield None for them and feed them pad_id."""

    def __init__(self, n_rows: int, eos_id: int | None, pad_id: int, device: torch.device) -> None:
        self.finished = [False] * n_rows
        self.eos_id, self.pad_id, self.device = eos_id, pad_id, device
        self._done_mask: torch.Tensor | None = None

    def mask(self, token: torch.Tensor) -> torch.Tensor:
        """Replace the sampled tokens of finished rows by pad_id."""
        return token if self._done_mask is None else token.masked_fill(self._done_mask, self.pad_id)

    def update(self, step: list[int | None]) -> list[int | None]:
        """Mark rows that just produced eos (their eos is yielded once); None for rows already done."""
        if self.eos_id is None:
            return step
        newly_finished = False
        for i, tok in enumerate(step):
            if self.finished[i]:
                step[i] = None
            elif tok == self.eos_id:
                self.finished[i] = newly_finished = True
        if newly_finished:
            self._done_mask = torch.tensor(self.finished, device=self.device)
        return step

    @property
    def all_done(self) -> bool:
        return all(self.finished)


def _decode(model: nn.Module, rows: list[list[int]], cfg: SamplingConfig, use_cache: bool,
            eos_id: int | None, pad_id: int, options: DecodeOptions | None) -> Iterator[list[int | None]]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():  # buffers are inference tensors: no autograd version tracking
            step_fn = decode_step_fn(model, options) if use_cache else None
            decoder = BatchDecoder(model, len(rows), use_cache=use_cache, pad_id=pad_id, step_fn=step_fn)
            for i, prompt in enumerate(rows):  # each row its own generator: it samples as it would alone
                generator = None if cfg.seed is None else torch.Generator(device=device).manual_seed(cfg.seed)
                decoder.add(prompt, cfg, generator, tag=i)
        for _ in range(cfg.max_new_tokens):
            # Inference mode is entered per step, not around the yield, so the caller's code between
            # steps runs in whatever grad mode it chose.
            step: list[int | None] = [None] * len(rows)
            with torch.inference_mode():
                for row, token in decoder.step():
                    step[row.tag] = token
                    if token == eos_id:  # a finished row leaves the batch; the others are unaffected
                        decoder.remove(row)
            yield step
            if not len(decoder):
                return
    finally:
        model.train(was_training)


@dataclass
class Generation:
    """One finished generation: what a server needs for its reply and usage counts."""

    text: str  # the continuation, without the stop string or eos
    token_ids: list[int]  # generated ids up to the finish (eos included; ids after a stop string are not)
    finish_reason: FinishReason  # "stop" (stop string), "eos", or "length" (max_new_tokens reached)
    prompt_tokens: int  # prompt tokens actually used (after left truncation)

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


def stop_boundary(text: str, stop: Sequence[str], start: int = 0) -> tuple[int, bool]:
    """How much of ``text`` may be emitted now: returns (end, stopped).

    If a stop string occurs (searching from ``start``), ``end`` is where the
    earliest one begins and ``stopped`` is True. Otherwise ``end`` excludes a
    trailing incomplete character (U+FFFD, more bytes may complete it) and the
    longest suffix that could still grow into a stop string.
    """
    hits = [i for s in stop if (i := text.find(s, start)) >= 0]
    if hits:
        return min(hits), True
    end = len(text)
    while end > 0 and text[end - 1] == "\ufffd":
        end -= 1
    hold = 0
    for s in stop:
        for k in range(min(len(s) - 1, end), hold, -1):  # longest candidate first
            if text.endswith(s[:k], 0, end):
                hold = k
                break
    return end - hold, False


class TextRow:
    """Turns one row's token stream into text deltas: incremental decoding plus stop strings."""

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str], eos_id: int | None,
                 prompt_tokens: int) -> None:
        self._decode, self._stop, self._eos_id = decode, list(stop), eos_id
        self._lookback = max((len(s) for s in stop), default=0)
        self._text_ids: list[int] = []  # generated ids that become text (no eos)
        self.token_ids: list[int] = []
        self.text = ""  # emitted so far == concatenation of the deltas
        self.prompt_tokens = prompt_tokens
        self.finish_reason: FinishReason | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int) -> str:
        """Add one generated token; return the text that can be emitted now (maybe empty)."""
        if self.done:
            return ""
        self.token_ids.append(token)
        if token == self._eos_id:
            return self.finish("eos")
        self._text_ids.append(token)
        full = self._decode(self._text_ids)
        end, stopped = stop_boundary(full, self._stop, start=max(0, len(self.text) - self._lookback))
        if stopped:
            self.finish_reason = "stop"
        return self._emit(full[:end])

    def finish(self, reason: FinishReason) -> str:
        """End the row (no-op if already done) and flush the held-back text."""
        if self.done:
            return ""
        self.finish_reason = reason
        return self._emit(self._decode(self._text_ids))  # held-back text contains no complete stop

    def _emit(self, upto: str) -> str:
        delta = upto[len(self.text):]
        self.text += delta
        return delta

    def result(self) -> Generation:
        assert self.finish_reason is not None, "finish() the row first"
        return Generation(self.text, list(self.token_ids), self.finish_reason, self.prompt_tokens)


class TextStream:
    """Iterator of text deltas for one prompt (see :func:`stream_text`).

    After iteration ends, :attr:`generation` holds the full text, the token ids,
    the finish reason and the token counts.
    """

    def __init__(self, model: nn.Module, tokenizer: TextCodec, prompt: str, cfg: SamplingConfig) -> None:
        ids = fit_prompt(tokenizer.encode(prompt), model.config.block_size)
        self._row = TextRow(tokenizer.decode, cfg.stop, tokenizer.eos_id, prompt_tokens=len(ids))
        pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
        self._tokens = generate_tokens(model, [ids], cfg, eos_id=tokenizer.eos_id, pad_id=pad)

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        while not self._row.done:
            step = next(self._tokens, None)
            delta = self._row.finish("length") if step is None else self._row.push(step[0])
            if delta:
                return delta
        self._tokens.close()  # a stop string may end us early: restore the model's mode now
        raise StopIteration

    @property
    def generation(self) -> Generation:
        """The finished generation; raises RuntimeError while the stream is still running."""
        if not self._row.done:
            raise RuntimeError("the stream has not finished yet: iterate it to the end first")
        return self._row.result()


def stream_text(model: nn.Module, tokenizer: TextCodec, prompt: str, cfg: SamplingConfig) -> TextStream:
    """Stream the continuation of ``prompt`` as text deltas.

    The whole generated id list is decoded each step and the new suffix
    emitted, so multi-byte characters and BPE merges come out right; a trailing
    incomplete character (U+FFFD) and any text that could still begin a stop
    string are held back. Generation ends at the first stop string (excluded),
    at eos (excluded), or at the length limit. ``"".join(stream_text(...))``
    equals ``generate_text(...)`` for one prompt and the same seed.
    """
    return TextStream(model, tokenizer, prompt, cfg)


@overload
def generate_text(model: nn.Module, tokenizer: TextCodec, prompts: list[str], cfg: SamplingConfig, *,
                  return_details: Literal[False] = ...) -> list[str]: ...


@overload
def generate_text(model: nn.Module, tokenizer: TextCodec, prompts: list[str], cfg: SamplingConfig, *,
                  return_details: Literal[True]) -> list[Generation]: ...


def generate_text(model: nn.Module, tokenizer: TextCodec, prompts: list[str], cfg: SamplingConfig, *,
                  return_details: bool = False) -> list[str] | list[Generation]:
    """Generate continuations for a batch of prompts (one padded batch, KV cache).

    Each row stops at its first stop string, at eos, or at the length limit,
    exactly as :func:`stream_text` would. With ``return_details`` the result
    is a list of :class:`Generation` (text, token ids, finish reason, counts).
    """
    block = model.config.block_size
    encoded = [fit_prompt(tokenizer.encode(p), block, i) for i, p in enumerate(prompts)]
    rows = [TextRow(tokenizer.decode, cfg.stop, tokenizer.eos_id, prompt_tokens=len(ids)) for ids in encoded]
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    results = collect_rows(generate_tokens(model, encoded, cfg, eos_id=tokenizer.eos_id, pad_id=pad), rows)
    return results if return_details else [r.text for r in results]


def collect_rows(tokens: Iterator[list[int | None]], rows: list[TextRow]) -> list[Generation]:
    """Feed a token stream into its rows until every row is done; the rest end by length."""
    try:
        for step in tokens:
            for row, tok in zip(rows, step, strict=True):
                if tok is not None:
                    row.push(tok)
            if all(row.done for row in rows):
                break
    finally:
        tokens.close()  # a stop string may end us early: restore the model's mode now
    for row in rows:
        row.finish("length")
    return [row.result() for row in rows]
