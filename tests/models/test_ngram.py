"""The Kneser-Ney n-gram model against a naive dictionary implementation of the same formula and hand-computed
values: every context of every order (seen or not) gives a distribution that sums to 1 and equals the
reference; unseen contexts back off exactly; the counts round-trip through safetensors."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model

from fromzero.errors import ConfigError
from fromzero.models import build_model, create_model, model_config
from fromzero.models.ngram import estimate_discounts
from fromzero.runs.weights import load_weights


# ----------------------------------------------------------------------------------------- naive reference
class NaiveKneserNey:
    """Interpolated (modified) Kneser-Ney from Python dictionaries, document by document (eos ends one)."""

    def __init__(self, tokens: list[int], vocab: int, order: int, eos: int | None, smoothing: str,
                 discount: float) -> None:
        self.vocab, self.order = vocab, order
        docs, current = [], []
        for t in tokens:
            current.append(t)
            if t == eos:
                docs.append(current)
                current = []
        docs.append(current)
        raw, left = Counter(), defaultdict(set)
        for doc in docs:
            for i in range(len(doc)):
                for k in range(1, order + 1):
                    if i - k + 1 < 0:
                        break
                    gram = tuple(doc[i - k + 1:i + 1])
                    raw[gram] += 1
                    left[gram].add(doc[i - k] if i - k >= 0 else "<s>")
        self.counts = {k: {} for k in range(1, order + 1)}  # order -> {gram: count}
        for gram in raw:
            k = len(gram)
            self.counts[k][gram] = raw[gram] if k == order else len(left[gram])
        self.discounts = {k: self._discounts(list(self.counts[k].values()), smoothing, discount)
                          for k in self.counts}

    @staticmethod
    def _discounts(counts: list[int], smoothing: str, discount: float) -> list[float]:
        if smoothing == "interpolated":
            return [discount] * 3
        n = {r: sum(1 for c in counts if c == r) for r in (1, 2, 3, 4)}
        out = []
        for r in (1, 2, 3):
            if n[1] == 0 or n[r] == 0:
                d = discount
            else:
                y = n[1] / (n[1] + 2 * n[2])
                d = r - (r + 1) * y * n[r + 1] / n[r]
            out.append(min(max(d, 0.0), r))
        return out

    def prob(self, k: int, context: tuple[int, ...], w: int) -> float:
        """P_k(w | context), len(context) == k - 1."""
        if k == 0:
            return 1.0 / self.vocab
        table, discounts = self.counts[k], self.discounts[k]
        followers = {g[-1]: c for g, c in table.items() if g[:-1] == context}
        total = sum(followers.values())
        lower = self.prob(k - 1, context[1:], w)
        if total == 0:
            return lower
        d = lambda c: discounts[min(c, 3) - 1]  # noqa: E731
        gamma = sum(d(c) for c in followers.values()) / total
        c = followers.get(w, 0)
        return (max(c - d(c), 0.0) if c else 0.0) / total + gamma * lower


def _corpus(seed: int, vocab: int, length: int) -> list[int]:
    """A random stream with a skewed distribution (some n-grams repeat, many never occur)."""
    return random.Random(seed).choices(range(vocab), weights=[2.0 ** -i for i in range(vocab)], k=length)


def _fitted(tokens: list[int], **cfg) -> torch.nn.Module:
    model = create_model("ngram", **cfg)
    model.fit_counts(torch.tensor(tokens))
    return model


def _last_probs(model: torch.nn.Module, contexts: list[tuple[int, ...]]) -> torch.Tensor:
    """(len(contexts), V): the distribution after each context (all of one length), from the last position."""
    return model(torch.tensor(contexts)).double().exp()[:, -1]


CASES = [  # (vocab, order, eos, smoothing, corpus length, seed)
    (3, 1, None, "modified", 40, 0), (3, 2, None, "interpolated", 30, 1), (3, 3, None, "modified", 60, 2),
    (4, 3, 3, "modified", 80, 3), (4, 4, 0, "modified", 120, 4), (3, 4, None, "interpolated", 25, 5),
    (2, 5, 1, "modified", 200, 6), (4, 3, None, "modified", 6, 7),
]


@pytest.mark.parametrize(("vocab", "order", "eos", "smoothing", "length", "seed"), CASES)
def test_every_context_sums_to_one_and_matches_the_naive_reference(vocab, order, eos, smoothing, length, seed) -> None:
    tokens = _corpus(seed, vocab, length)
    model = _fitted(tokens, vocab_size=vocab, order=order, eos_id=eos, smoothing=smoothing, discount=0.6)
    ref = NaiveKneserNey(tokens, vocab, order, eos, smoothing, 0.6)
    for k in range(1, order + 1):
        assert model.discounts[k - 1].tolist() == pytest.approx(ref.discounts[k], abs=1e-12)
    # the empty context: a window whose last token is masked out (and, when there is one, an eos)
    empty = model(torch.zeros(1, 1, dtype=torch.long), attention_mask=torch.zeros(1, 1)).double().exp()[0, 0]
    expected = torch.tensor([ref.prob(1, (), w) for w in range(vocab)], dtype=torch.float64)
    torch.testing.assert_close(empty, expected, atol=1e-6, rtol=0)
    if eos is not None:
        torch.testing.assert_close(_last_probs(model, [(eos,)])[0], expected, atol=1e-6, rtol=0)
    for j in range(1, order):  # every context of length j, seen or not: order j + 1
        contexts = list(itertools.product(range(vocab), repeat=j))
        contexts = [c for c in contexts if eos is None or eos not in c]  # an eos inside ends the context
        got = _last_probs(model, contexts)
        torch.testing.assert_close(got.sum(-1), torch.ones(len(contexts), dtype=torch.float64), atol=1e-6, rtol=0)
        expected = torch.tensor([[ref.prob(j + 1, c, w) for w in range(vocab)] for c in contexts],
                                dtype=torch.float64)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_windows_back_off_to_shorter_contexts_at_the_start_and_after_an_eos() -> None:
    """Position t of a window sees at most n-1 tokens, none before the window or an eos: the same distribution
    as a window holding just that context."""
    tokens = _corpus(11, 4, 150)
    model = _fitted(tokens, vocab_size=4, order=3, eos_id=3)
    window = torch.tensor([[0, 1, 2, 0, 3, 1, 2]])
    probs = model(window).double().exp()[0]  # (T, V)
    expect = [(0,), (0, 1), (1, 2), (2, 0), (3,), (1,), (1, 2)]  # (3,) is the eos: the empty context follows
    for t, ctx in enumerate(expect):
        alone = model(torch.tensor([ctx])).double().exp()[0, -1]
        torch.testing.assert_close(probs[t], alone, atol=1e-7, rtol=0)
    padded = model(torch.tensor([[2, 2, 0, 1]]), attention_mask=torch.tensor([[0, 0, 1, 1]])).exp()[0, -1]
    torch.testing.assert_close(padded, model(torch.tensor([[0, 1]])).exp()[0, -1])


def test_a_bigram_by_hand() -> None:
    """tokens 0 1 0 1 2, V = 3, interpolated KN with D = 0.5. Continuation counts: N1+(. 0) = |{<s>, 1}| = 2,
    N1+(. 1) = 1, N1+(. 2) = 1 (total 4, gamma 3 * 0.5 / 4), so P1 = (0.5, 0.25, 0.25). After 1: counts
    1->0 and 1->2 (total 2, gamma 0.5): P(0|1) = 0.25 + 0.5 * 0.5 = 0.5, P(1|1) = 0.125, P(2|1) = 0.375.
    After 0: 0->1 twice (gamma 0.25): P(.|0) = (0.125, 0.8125, 0.0625). 2 was never followed: P(.|2) = P1."""
    model = _fitted([0, 1, 0, 1, 2], vocab_size=3, order=2, smoothing="interpolated", discount=0.5)
    got = _last_probs(model, [(1,), (0,), (2,)])
    expected = torch.tensor([[0.5, 0.125, 0.375], [0.125, 0.8125, 0.0625], [0.5, 0.25, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=1e-7, rtol=0)


def test_an_unseen_context_backs_off_to_the_lower_order_exactly() -> None:
    """(2, 2) never occurs, (0, 1) does: the first is P(. | 2) itself, the second is not P(. | 1)."""
    tokens = [0, 1, 2, 0, 1, 0, 2, 1, 2, 0, 0, 1]
    model = _fitted(tokens, vocab_size=3, order=3)
    unseen, shorter, seen, its_lower = model(torch.tensor([[2, 2], [1, 2], [0, 1], [2, 1]])).exp()[:, -1]
    assert torch.equal(unseen, shorter)
    assert not torch.allclose(seen, its_lower)
    ref = NaiveKneserNey(tokens, 3, 3, None, "modified", 0.75)
    assert [ref.prob(3, (2, 2), w) for w in range(3)] == [ref.prob(2, (2,), w) for w in range(3)]


def test_modified_discounts_by_hand() -> None:
    """n1..n4 = 3, 2, 1, 1: Y = 3/7, D1 = 1 - 2Y(2/3) = 3/7, D2 = 2 - 3Y/2 = 19/14, D3+ = 3 - 4Y = 9/7."""
    d = estimate_discounts(torch.tensor([1, 1, 1, 2, 2, 3, 4, 9]), "modified", 0.75)
    assert d.tolist() == pytest.approx([3 / 7, 19 / 14, 9 / 7])
    # no count of 3: D3+ falls back to the configured discount; D2 = 2 - 3Y * 0 / n2 = 2
    assert estimate_discounts(torch.tensor([1, 2, 5]), "modified", 0.6).tolist() == pytest.approx([1 / 3, 2, 0.6])
    # n1..n4 = 1, 1, 4, 0: D2 = 2 - 3 (1/3) 4 = -2 is clamped to 0; D3+ = 3 - 0 = 3
    assert estimate_discounts(torch.tensor([1, 2, 3, 3, 3, 3]), "modified", 0.6).tolist() == pytest.approx(
        [1 / 3, 0, 3])


def test_counts_round_trip_through_safetensors(tmp_path: Path) -> None:
    tokens = _corpus(21, 5, 300)
    model = _fitted(tokens, vocab_size=5, order=4, eos_id=4)
    save_model(model, str(tmp_path / "model.safetensors"))
    fresh = build_model(model_config("ngram", {"vocab_size": 5, "order": 4, "eos_id": 4,
                                               "table_sizes": model.config.table_sizes}))
    load_weights(fresh, tmp_path / "model.safetensors", "the test config")  # strict: names and shapes
    idx = torch.tensor([[0, 1, 2, 3, 4, 0, 0, 1], [2, 2, 2, 2, 1, 0, 3, 3]])
    assert torch.equal(fresh(idx), model(idx))
    assert math.isfinite(float(model(idx).exp().sum()))


def test_bad_configs_name_the_key() -> None:
    with pytest.raises(ConfigError, match="model.order"):
        model_config("ngram", {"vocab_size": 50257, "order": 5})  # 50258^5 > 2^63
    with pytest.raises(ConfigError, match="model.table_sizes"):
        model_config("ngram-3", {"table_sizes": [1, 2]})
    with pytest.raises(ConfigError, match="model.discount"):
        model_config("ngram-3", {"discount": 1.5})
