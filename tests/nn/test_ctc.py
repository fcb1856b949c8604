"""CTC decoding and loss against references: greedy by hand; beam width 1 equals greedy; on tiny vocabularies a
wide beam finds exactly the labelling (and probabilities) of a brute-force sum over all paths;
torch.nn.functional.ctc_loss equals a naive forward algorithm (value and gradient), which itself equals the
brute-force sum."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from fromzero.errors import DataError
from fromzero.nn.ctc import collapse, ctc_beam_decode, ctc_greedy_decode, ctc_prefix_beam_search


def _random_log_probs(t: int, v: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.log_softmax(torch.randn(t, v, generator=g, dtype=torch.float64) * scale, dim=-1)


def _brute_force(log_probs: torch.Tensor, blank: int = 0) -> dict[tuple[int, ...], float]:
    """labelling -> log p(labelling | x), summing every one of the V^T paths."""
    probs = log_probs.exp().tolist()
    total: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(len(probs[0])), repeat=len(probs)):
        p = math.prod(probs[t][s] for t, s in enumerate(path))
        key = tuple(collapse(list(path), blank))
        total[key] = total.get(key, 0.0) + p
    return {k: math.log(p) for k, p in total.items() if p > 0}


def test_greedy_by_hand() -> None:
    path = [1, 1, 0, 1, 2, 2, 0, 0, 2]  # a a _ a b b _ _ b -> a a b b
    log_probs = F.one_hot(torch.tensor(path), 3).double().clamp(min=1e-6).log()
    assert collapse(path) == [1, 1, 2, 2]
    assert ctc_greedy_decode(log_probs) == [1, 1, 2, 2]
    assert ctc_greedy_decode(log_probs, blank=2) == [1, 0, 1, 0]  # another blank id


def test_beam_width_one_equals_greedy() -> None:
    for seed in range(60):
        log_probs = _random_log_probs(25, 6, seed, scale=1.0 + seed % 4)
        assert ctc_beam_decode(log_probs, beam_width=1) == ctc_greedy_decode(log_probs), seed
        assert ctc_beam_decode(log_probs, beam_width=1, blank=3) == ctc_greedy_decode(log_probs, blank=3), seed


def test_batched_with_lengths_equals_rows() -> None:
    batch = torch.stack([_random_log_probs(12, 5, s) for s in range(3)])  # (3, 12, 5)
    lengths = torch.tensor([12, 7, 0])
    for decode in (ctc_greedy_decode, lambda x, n=None: ctc_beam_decode(x, n, beam_width=4)):
        rows = decode(batch, lengths)
        assert rows == [decode(batch[0]), decode(batch[1, :7]), []]
        assert decode(batch) == [decode(row) for row in batch]
    with pytest.raises(DataError, match="lengths"):
        ctc_greedy_decode(batch, torch.tensor([12, 13, 1]))


@pytest.mark.parametrize("merge_prefixes", [False, True])
@pytest.mark.parametrize(("t", "v"), [(1, 2), (3, 3), (4, 2), (5, 3)])
def test_wide_beam_is_exact_on_tiny_vocabularies(t: int, v: int, merge_prefixes: bool) -> None:
    for seed in range(8):
        log_probs = _random_log_probs(t, v, 100 * t + seed, scale=1.5)
        exact = _brute_force(log_probs)
        for bonus in (0.0, 1.5, -2.0):
            hyps = ctc_prefix_beam_search(log_probs, beam_width=500, insertion_bonus=bonus,
                                          merge_prefixes=merge_prefixes)
            assert {h.tokens: h.log_prob for h in hyps} == pytest.approx(exact, abs=1e-9)
            best = max(exact, key=lambda k: exact[k] + bonus * len(k))
            assert hyps[0].tokens == best and hyps[0].score == pytest.approx(exact[best] + bonus * len(best))


def test_beam_finds_a_labelling_greedy_misses() -> None:
    # frame 1: "a" 0.4, blank 0.6 (greedy: blank); frame 2 likewise; p("a") = 1 - 0.36 = 0.64 > p("") = 0.36
    log_probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64).log()
    assert ctc_greedy_decode(log_probs) == []
    hyps = ctc_prefix_beam_search(log_probs, beam_width=4)
    assert hyps[0].tokens == (1,) and hyps[0].log_prob == pytest.approx(math.log(0.64))


def _naive_ctc_nll(log_probs: torch.Tensor, labels: list[int], blank: int = 0) -> torch.Tensor:
    """-log p(labels | x) by the forward algorithm over the blank-extended labels (Graves et al. 2006, eq. 6-8)."""
    ext = [blank]
    for c in labels:
        ext += [c, blank]
    impossible = torch.tensor(-1e30, dtype=log_probs.dtype)  # finite "log 0": logsumexp keeps finite gradients
    alpha = [impossible] * len(ext)
    alpha[0] = log_probs[0, blank]
    if len(ext) > 1:
        alpha[1] = log_probs[0, ext[1]]
    for t in range(1, log_probs.shape[0]):
        new = []
        for s in range(len(ext)):
            terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(alpha[s - 2])
            new.append(torch.logsumexp(torch.stack(terms), 0) + log_probs[t, ext[s]])
        alpha = new
    ends = [alpha[-1]] + ([alpha[-2]] if len(ext) > 1 else [])
    return -torch.logsumexp(torch.stack(ends), 0)


def test_naive_forward_equals_brute_force() -> None:
    log_probs = _random_log_probs(5, 3, 7)
    exact = _brute_force(log_probs)
    for labels in ([1], [1, 1], [2, 1], [1, 2, 1], []):
        assert float(-_naive_ctc_nll(log_probs, labels)) == pytest.approx(exact[tuple(labels)], abs=1e-12)


def test_torch_ctc_loss_equals_the_naive_forward_algorithm() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)  # (T, B, V)
    labels = torch.tensor([[1, 1, 2, 0], [3, 4, 3, 2], [2, 0, 0, 0]])  # padded
    input_lengths, label_lengths = torch.tensor([9, 7, 4]), torch.tensor([3, 4, 1])
    log_probs = F.log_softmax(logits, dim=-1)
    ours = F.ctc_loss(log_probs, labels, input_lengths, label_lengths, reduction="none")
    naive = torch.stack([_naive_ctc_nll(log_probs[: input_lengths[b], b], labels[b, : label_lengths[b]].tolist())
                         for b in range(3)])
    torch.testing.assert_close(ours, naive, rtol=1e-10, atol=1e-10)
    grad_torch, = torch.autograd.grad(ours.sum(), logits, retain_graph=True)
    grad_naive, = torch.autograd.grad(naive.sum(), logits)
    torch.testing.assert_close(grad_torch, grad_naive, rtol=1e-8, atol=1e-10)
    mean = F.ctc_loss(log_probs, labels, input_lengths, label_lengths, reduction="mean")
    torch.testing.assert_close(mean, (naive / label_lengths).mean())
