"""Encoder-decoder generation (T5): encode the inputs once, then decode token by token.

    memory = Enc(x)                                   one forward over the (right-padded) inputs
    y_0 = decoder_start_id;  y_t ~ p(. | y_<t, memory)   one decoder step per token

With the KV cache, each step runs the decoder over the newest token only: the
self-attention keys/values of earlier tokens are cached, and so are the
memory's projected keys/values (projected once, at the first step). Without
it, every step recomputes the decoder over all tokens so far: the reference.

Encoder inputs of different lengths are right-padded and masked (T5's
relative positions make the side irrelevant for real tokens); inputs longer
than the model's ``max_positions`` keep their first ``max_positions`` tokens.
Sampling reuses :func:`fromzero.generation.sampling.next_token`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from fromzero.generation.generate import EosTracker, TextCodec, TextRow, collect_rows
from fromzero.generation.sampling import SamplingConfig, next_token


def generate_seq2seq(model: nn.Module, input_ids_list: list[list[int]], cfg: SamplingConfig, *,
                     use_cache: bool = True, eos_id: int | None, pad_id: int,
                     decoder_start_id: int) -> Iterator[list[int | None]]:
    """Generate outputs for a batch of encoder inputs, yielding one decoder step at a time.

    ``model`` has ``encode(ids, mask)``, ``decode(ids, memory, mask, cache=...)``,
    ``new_cache(batch, max_len)`` and ``config.max_positions`` (``fromzero.models.T5``).
    Each step yields the new token of every row, or None for a row that already
    produced ``eos_id`` (the eos itself is yielded once). Stops after
    ``cfg.max_new_tokens`` steps or when every row has finished. The model runs
    in eval and inference mode; its previous mode is restored at the end.
    Raises ValueError (at call time) for an empty batch or an empty input.
    """
    if not input_ids_list:
        raise ValueError("generate_seq2seq needs at least one input, got an empty list")
    for i, ids in enumerate(input_ids_list):
        if len(ids) == 0:
            raise ValueError(f"input {i} is empty: give at least one token (e.g. the eos token)")
    limit = model.config.max_positions
    rows = [list(ids[:limit]) for ids in input_ids_list]
    return _decode(model, rows, cfg, use_cache, eos_id, pad_id, decoder_start_id)


def _right_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, S) ids right-padded with pad_id, and the (B, S) bool mask of real tokens (None if no padding)."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
    if all(len(r) == width for r in rows):
        return ids, None
    mask = torch.tensor([[True] * len(r) + [False] * (width - len(r)) for r in rows], device=device)
    return ids, mask


def _decode(model: nn.Module, rows: list[list[int]], cfg: SamplingConfig, use_cache: bool, eos_id: int | None,
            pad_id: int, decoder_start_id: int) -> Iterator[list[int | None]]:
    device = next(model.parameters()).device
    steps = cfg.max_new_tokens
    generator = torch.Generator(device=device).manual_seed(cfg.seed) if cfg.seed is not None else None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            ids, mask = _right_pad(rows, pad_id, device)
            memory = model.encode(ids, mask)  # (B, S, C), once
            dec = torch.full((len(rows), steps + 1), pad_id, dtype=torch.long, device=device)
            dec[:, 0] = decoder_start_id
            cache = model.new_cache(len(rows), steps) if use_cache else None
        eos = EosTracker(len(rows), eos_id, pad_id, device)
        for t in range(steps):
            with torch.inference_mode():  # per step, so the caller's code between steps keeps its grad mode
                inputs = dec[:, t:t + 1] if cache is not None else dec[:, :t + 1]
                logits = model.decode(inputs, memory, mask, cache=cache)[:, -1]  # (B, V)
                token = eos.mask(next_token(logits, cfg, generator))
                dec[:, t + 1] = token
            yield eos.update(token.tolist())
            if eos.all_done:
                return
    finally:
        model.train(was_training)


def seq2seq_text(model: nn.Module, tokenizer: TextCodec, texts: Sequence[str], cfg: SamplingConfig, *,
                 append_eos: bool = True) -> list[str]:
    """Generate one output text per input text (one padded batch, KV cache).

    Inputs get the eos token appended when they do not end with it already (as
    T5's tokenizer and preprocessing do; ``append_eos=False`` turns this off).
    Each output ends at eos (excluded), at its first stop string (excluded)
    or at ``cfg.max_new_tokens``. The pad id is the tokenizer's, else the model's;
    the decoder starts from ``model.config.decoder_start_id``.
    """
    if not texts:  # nothing to do (e.g. a pretraining recipe with no sample prompts)
        return []
    eos = tokenizer.eos_id if tokenizer.eos_id is not None else model.config.eos_id
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else model.config.pad_id
    encoded = []
    for text in texts:
        ids = tokenizer.encode(text)
        encoded.append(ids + [eos] if append_eos and (not ids or ids[-1] != eos) else ids)
    out = [TextRow(tokenizer.decode, cfg.stop, eos, prompt_tokens=len(ids)) for ids in encoded]
    tokens = generate_seq2seq(model, encoded, cfg, eos_id=eos, pad_id=pad,
                              decoder_start_id=model.config.decoder_start_id)
    return [g.text for g in collect_rows(tokens, out)]
