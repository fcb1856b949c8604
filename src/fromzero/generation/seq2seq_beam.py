"""Beam search with a length penalty for encoder-decoder models (T5, seq2seq-rnn).

Each input keeps the ``beam_size`` best partial outputs (hypotheses) by summed log-probability. A step
extends every hypothesis by every token, ranks the 2 * beam_size best extensions, moves those ending in
eos (among the top beam_size) to the finished list, scored

    score(Y) = log p(Y | x) / lp(Y),   lp(Y) = ((5 + |Y|) / 6) ** alpha        Wu et al. 2016 (GNMT), eq. 14

(|Y| counts the eos; alpha = 0: no penalty), and keeps the best beam_size others alive. An input is done
once it has beam_size finished hypotheses (fairseq's and Hugging Face's ``early_stopping``), or at
``max_new_tokens`` (then its alive hypotheses are scored as they are). So ``beam_size=1`` is exactly
greedy decoding.

The model needs T5's interface: ``encode(ids, mask)``, ``decode(ids, memory, mask, cache=)``, and
``new_cache(batch, max_len)``. A cache with ``reorder(index)`` (``Seq2SeqRNNCache``) follows the
hypotheses; any other model recomputes the decoder over each hypothesis's whole prefix every step.
"""

from __future__ import annotations

import torch
from torch import nn

from fromzero.generation.seq2seq import _right_pad


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp = ((5 + length) / 6) ** alpha (1 for alpha = 0)."""
    return ((5 + length) / 6) ** alpha


@torch.inference_mode()
def _prepare(model: nn.Module, rows: list[list[int]], k: int, pad_id: int, device: torch.device):
    """Encode once, then repeat each input's memory and mask for its k hypotheses (row b*k + j)."""
    ids, mask = _right_pad(rows, pad_id, device)
    memory = model.encode(ids, mask).repeat_interleave(k, dim=0)  # (B*k, S, M)
    return memory, None if mask is None else mask.repeat_interleave(k, dim=0)


def beam_search_seq2seq(model: nn.Module, input_ids_list: list[list[int]], *, beam_size: int, max_new_tokens: int,
                        eos_id: int, pad_id: int, decoder_start_id: int, alpha: float = 0.0,
                        use_cache: bool = True) -> list[list[int]]:
    """The best output (eos excluded) for each encoder input. ``alpha``: the length penalty's exponent.

    ``use_cache=False`` recomputes every hypothesis's prefix each step (the reference the cache is tested against).
    """
    if beam_size < 1 or max_new_tokens < 1:
        raise ValueError(f"beam_size and max_new_tokens must be >= 1, got {beam_size} and {max_new_tokens}")
    if not input_ids_list or any(len(r) == 0 for r in input_ids_list):
        raise ValueError("beam search needs at least one input, each with at least one token")
    device, k, B = next(model.parameters()).device, beam_size, len(input_ids_list)
    rows = [list(r[:model.config.max_positions]) for r in input_ids_list]
    was_training = model.training
    model.eval()
    try:
        memory, mask = _prepare(model, rows, k, pad_id, device)
        cache = model.new_cache(B * k, max_new_tokens)
        cache = cache if use_cache else None
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
        scores = torch.full((B, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # one live hypothesis (the empty one) per input at the start
        tokens = torch.full((B * k, 1), decoder_start_id, dtype=torch.long, device=device)
        for t in range(max_new_tokens):
            with torch.inference_mode():
                inputs = tokens[:, -1:] if cache is not None else tokens
                logp = torch.log_softmax(model.decode(inputs, memory, mask, cache=cache)[:, -1].float(), -1)
            V = logp.shape[-1]
            cand, flat = (scores.view(-1, 1) + logp).view(B, k * V).topk(min(2 * k, k * V), dim=1)  # (B, 2k)
            parent = torch.zeros(B, k, dtype=torch.long, device=device)
            nxt = torch.full((B, k), pad_id, dtype=torch.long, device=device)
            scores = torch.full((B, k), float("-inf"), device=device)
            for b in range(B):
                if len(finished[b]) >= k:
                    continue
                alive = 0
                for rank, (s, f) in enumerate(zip(cand[b].tolist(), flat[b].tolist(), strict=True)):
                    if s == float("-inf") or alive == k:
                        break
                    beam, tok = divmod(f, V)
                    if tok == eos_id:
                        if rank < k:
                            path = tokens[b * k + beam, 1:].tolist()
                            finished[b].append((s / length_penalty(t + 1, alpha), path))
                        continue
                    parent[b, alive], nxt[b, alive], scores[b, alive] = beam, tok, s
                    alive += 1
            index = (parent + torch.arange(B, device=device)[:, None] * k).view(-1)  # (B*k,)
            tokens = torch.cat([tokens.index_select(0, index), nxt.view(-1, 1)], dim=1)
            if cache is not None:
                cache.reorder(index)
            if all(len(f) >= k for f in finished):
                break
    finally:
        model.train(was_training)
    return [_best(finished[b], scores[b], tokens[b * k:(b + 1) * k, 1:], alpha) for b in range(B)]


def _best(finished: list[tuple[float, list[int]]], scores: torch.Tensor, alive: torch.Tensor,
          alpha: float) -> list[int]:
    """The highest-scoring hypothesis among the finished ones and (if too few finished) the alive ones."""
    pool = list(finished)
    if len(finished) < len(scores):
        pool += [(s / length_penalty(alive.shape[1], alpha), alive[j].tolist())
                 for j, s in enumerate(scores.tolist()) if s != float("-inf")]
    return max(pool, key=lambda p: p[0])[1]
