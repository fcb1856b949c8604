"""Decoding CTC outputs: greedy (best path) and prefix beam search, over log-probabilities.

CTC (Graves et al. 2006, "Connectionist Temporal Classification") gives each of T frames a distribution
over V symbols, one of them the blank. A path ``pi`` (one symbol per frame) maps to a labelling ``B(pi)`` by
collapsing runs of the same symbol and then dropping blanks ("a a _ a b b" -> "a a b"); the labelling's
probability sums over all its paths::

    p(l | x) = sum_{pi : B(pi) = l} prod_t y[t, pi_t]

Greedy decoding takes the most probable symbol per frame and collapses: ``B(argmax_t y[t])``, the labelling of
the single best path, not always the most probable labelling.

Prefix beam search (Hannun et al. 2014, "First-Pass Large Vocabulary Continuous Speech Recognition using
Bi-Directional Recurrent DNNs", arXiv:1408.2873) sums over paths instead. A beam entry is a CTC state:
a prefix (labelling so far) plus whether its last frame was a blank, scored by the log of the total
probability of all paths into it. Per frame, from a state (prefix, ended-in-blank) with score s:

    blank              -> (prefix, blank)            s + log y[t, blank]
    c == last, no blank -> (prefix, not blank)        s + log y[t, c]      (a repeat collapses)
    any other c         -> (prefix + c, not blank)    s + log y[t, c]      (after a blank, c == last is new)

and paths reaching the same state add (log-sum-exp). The beam keeps the ``beam_width`` best states, ranked by
``score + insertion_bonus * len(prefix)`` (a bonus > 0 counters the bias towards short outputs). Hannun's
formulation merges each prefix's two states before pruning (``merge_prefixes=True``); pruning states
separately (the default) makes ``beam_width=1`` exactly greedy decoding, since one state's successors then
come from distinct symbols. With a beam wide enough to hold every state both are exact: at the end each
prefix's states are summed and the hypotheses ranked by ``log p(prefix | x) + bonus * len``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fromzero.errors import DataError

NEG_INF = -math.inf


@dataclass(frozen=True)
class CTCHypothesis:
    """A decoded labelling: ``tokens`` (blank-free ids), ``log_prob`` = log p(tokens | x) summed over the
    alignments the beam kept, and ``score`` = log_prob + insertion_bonus * len(tokens) (the ranking)."""

    tokens: tuple[int, ...]
    log_prob: float
    score: float


def _rows(log_probs: torch.Tensor, lengths: torch.Tensor | None) -> tuple[list[torch.Tensor], bool]:
    """(T, V) or (B, T, V) [+ lengths (B,)] -> per-utterance (T_b, V) tensors and whether the input was batched."""
    if log_probs.dim() == 2:
        if lengths is not None:
            raise DataError("lengths are for batched (B, T, V) log-probs; a (T, V) input has no lengths")
        return [log_probs], False
    if log_probs.dim() != 3:
        raise DataError(f"CTC log-probs must be (T, V) or (B, T, V), got {tuple(log_probs.shape)}")
    if lengths is None:
        return list(log_probs), True
    lengths = torch.as_tensor(lengths).tolist()
    if len(lengths) != log_probs.shape[0] or any(not 0 <= n <= log_probs.shape[1] for n in lengths):
        raise DataError(f"lengths {lengths} must be one per row, each in [0, {log_probs.shape[1]}]")
    return [row[: int(n)] for row, n in zip(log_probs, lengths, strict=True)], True


def collapse(path: list[int], blank: int = 0) -> list[int]:
    """The CTC map B: merge runs of equal symbols, then drop blanks."""
    out: list[int] = []
    previous = None
    for symbol in path:
        if symbol != previous and symbol != blank:
            out.append(symbol)
        previous = symbol
    return out


def ctc_greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | None = None,
                      blank: int = 0) -> list[int] | list[list[int]]:
    """Best-path decoding of (T, V) -> token ids, or of (B, T, V) with optional lengths (B,) -> one list per row."""
    rows, batched = _rows(log_probs, lengths)
    decoded = [collapse(row.argmax(dim=-1).tolist(), blank) for row in rows]
    return decoded if batched else decoded[0]


def _logadd(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


State = tuple[tuple[int, ...], bool]  # (prefix, last frame was a blank)


def _extend(beam: dict[State, float], frame: list[float], blank: int) -> dict[State, float]:
    """One frame of the state transitions in the module docstring; merged by state."""
    new: dict[State, float] = {}
    for (prefix, ended_blank), score in beam.items():
        key = (prefix, True)
        new[key] = _logadd(new.get(key, NEG_INF), score + frame[blank])
        last = prefix[-1] if prefix else None
        for c, lp in enumerate(frame):
            if c == blank or lp == NEG_INF:
                continue
            key = (prefix, False) if (c == last and not ended_blank) else (prefix + (c,), False)
            new[key] = _logadd(new.get(key, NEG_INF), score + lp)
    return new


def _prune(beam: dict[State, float], width: int, bonus: float, merge_prefixes: bool) -> dict[State, float]:
    """Keep the best ``width`` states (or the states of the best ``width`` prefixes); ties keep insertion order."""
    if not merge_prefixes:
        ranked = sorted(beam.items(), key=lambda item: -(item[1] + bonus * len(item[0][0])))
        return dict(ranked[:width])
    totals: dict[tuple[int, ...], float] = {}
    for (prefix, _), score in beam.items():
        totals[prefix] = _logadd(totals.get(prefix, NEG_INF), score)
    kept = set(sorted(totals, key=lambda p: -(totals[p] + bonus * len(p)))[:width])
    return {state: score for state, score in beam.items() if state[0] in kept}


def ctc_prefix_beam_search(log_probs: torch.Tensor, beam_width: int = 8, blank: int = 0,
                           insertion_bonus: float = 0.0, merge_prefixes: bool = False,
                           n_best: int | None = None) -> list[CTCHypothesis]:
    """Prefix beam search over one utterance's log-probs (T, V): the ``n_best`` (default all kept) hypotheses,
    best first. Inputs are log-probabilities (e.g. log_softmax of a model's logits)."""
    if log_probs.dim() != 2:
        raise DataError(f"one utterance's CTC log-probs must be (T, V), got {tuple(log_probs.shape)}")
    if beam_width < 1:
        raise DataError(f"beam_width must be >= 1, got {beam_width}")
    beam: dict[State, float] = {((), True): 0.0}
    for frame in log_probs.double().tolist():
        beam = _prune(_extend(beam, frame, blank), beam_width, insertion_bonus, merge_prefixes)
    totals: dict[tuple[int, ...], float] = {}
    for (prefix, _), score in beam.items():
        totals[prefix] = _logadd(totals.get(prefix, NEG_INF), score)
    hypotheses = [CTCHypothesis(p, lp, lp + insertion_bonus * len(p)) for p, lp in totals.items()]
    hypotheses.sort(key=lambda h: -h.score)
    return hypotheses[:n_best] if n_best is not None else hypotheses


def ctc_beam_decode(log_probs: torch.Tensor, lengths: torch.Tensor | None = None, beam_width: int = 8,
                    blank: int = 0, insertion_bonus: float = 0.0,
                    merge_prefixes: bool = False) -> list[int] | list[list[int]]:
    """Best labelling by prefix beam search, for (T, V) -> token ids or (B, T, V) [+ lengths] -> one list per row."""
    rows, batched = _rows(log_probs, lengths)
    decoded = [list(ctc_prefix_beam_search(row, beam_width, blank, insertion_bonus, merge_prefixes, 1)[0].tokens)
               for row in rows]
    return decoded if batched else decoded[0]
