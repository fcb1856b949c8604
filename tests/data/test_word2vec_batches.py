"""Word2Vec batches: subsampling and negative tables equal hand-computed probabilities, windows hold the
right words, draws follow those probabilities, and every batch is a pure function of (seed, step, micro)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fromzero.data.word2vec_batches import (
    Word2VecBatchConfig,
    Word2VecBatches,
    keep_probabilities,
    negative_probabilities,
)
from fromzero.errors import DataError


def test_keep_probabilities_by_hand() -> None:
    """counts 0, 1, 16, 81, 2 of 100 tokens, t = 0.01: keep = min(1, sqrt(t / f) + t / f) (word2vec.c)."""
    keep = keep_probabilities(np.array([0, 1, 16, 81, 2]), t=0.01)
    np.testing.assert_allclose(keep, [0.0, 1.0, 1 / 4 + 1 / 16, 1 / 9 + 1 / 81, 1.0])  # sqrt(.5) + .5 > 1
    np.testing.assert_allclose(keep_probabilities(np.array([0, 1, 16, 81, 2]), t=0.0), [0, 1, 1, 1, 1])


def test_negative_probabilities_by_hand() -> None:
    """counts 0, 1, 16, 81: count^0.75 = 0, 1, 8, 27 of 36."""
    np.testing.assert_allclose(negative_probabilities(np.array([0, 1, 16, 81])), [0, 1 / 36, 8 / 36, 27 / 36])
    np.testing.assert_allclose(negative_probabilities(np.array([0, 1, 16, 81]), power=1.0),
                               [0, 1 / 98, 16 / 98, 81 / 98])


def _corpus() -> np.ndarray:
    """ids 1 x1, 2 x16, 3 x81, 0 x2 (excluded below), shuffled."""
    tokens = np.array([1] * 1 + [2] * 16 + [3] * 81 + [0] * 2, dtype=np.uint16)
    return np.random.default_rng(0).permutation(tokens)


def test_the_tables_of_a_tiny_corpus_are_the_hand_computed_ones() -> None:
    src = Word2VecBatches(_corpus(), vocab_size=5, batch_size=4, seed=0,
                          cfg=Word2VecBatchConfig(subsample=0.01), exclude_ids=[0])
    np.testing.assert_array_equal(src.counts, [0, 1, 16, 81, 0])  # 0 excluded, 4 unseen
    np.testing.assert_allclose(src.negative_p, [0, 1 / 36, 8 / 36, 27 / 36, 0])
    r16, r81 = 0.01 * 98 / 16, 0.01 * 98 / 81
    np.testing.assert_allclose(src.keep, [0, 1, math.sqrt(r16) + r16, math.sqrt(r81) + r81, 0])


def test_drawn_centers_and_negatives_follow_the_tables() -> None:
    """Centers ~ count * keep, negatives ~ count^0.75: within 0.01 over 40k draws each."""
    src = Word2VecBatches(_corpus(), vocab_size=5, batch_size=400, seed=3,
                          cfg=Word2VecBatchConfig(window=2, negatives=4, subsample=0.01), exclude_ids=[0])
    batches = [src.batch(step) for step in range(100)]
    centers = np.bincount(torch.cat([b["center"] for b in batches]).numpy(), minlength=5)
    negatives = np.bincount(torch.cat([b["negatives"].flatten() for b in batches]).numpy(), minlength=5)
    kept = src.counts * src.keep
    np.testing.assert_allclose(centers / centers.sum(), kept / kept.sum(), atol=0.01)
    np.testing.assert_allclose(negatives / negatives.sum(), src.negative_p, atol=0.01)
    assert centers[0] == negatives[0] == centers[4] == negatives[4] == 0


def test_every_context_slot_has_its_own_negatives() -> None:
    """negatives (B, 2W, K): drawn for every slot, so two slots of a row almost never share all K."""
    src = Word2VecBatches(_corpus(), vocab_size=5, batch_size=50, seed=2,
                          cfg=Word2VecBatchConfig(window=3, negatives=4, subsample=0.01), exclude_ids=[0])
    neg = src.batch(0)["negatives"]
    assert neg.shape == (50, 6, 4)
    same = (neg[:, :1] == neg[:, 1:]).all(-1)  # (B, 5): slot j's K negatives equal slot 0's
    # drawn per slot: P(two slots' K = 4 draws all equal) = (sum_w p_w^2)^4 = (794 / 1296)^4 = 0.14; shared: 1
    assert same.float().mean() < 0.3


def test_windows_hold_the_b_nearest_words_and_b_is_uniform() -> None:
    """On tokens 0..n-1 (all distinct, nothing subsampled) slot j holds center -1-j (left), center+1+j (right);
    both sides use the same b, so P(distance d is in the window) = (W - d + 1) / W."""
    w, n = 4, 5000
    src = Word2VecBatches(np.arange(n, dtype=np.uint16), vocab_size=n, batch_size=500, seed=1,
                          cfg=Word2VecBatchConfig(window=w, subsample=0.0))
    filled = np.zeros(w)
    rows = 0
    for step in range(20):
        b = src.batch(step)
        c, ctx, mask = b["center"].numpy(), b["context"].numpy(), b["context_mask"].numpy()
        inner = (c >= w) & (c < n - w)
        d = np.arange(1, w + 1)
        np.testing.assert_array_equal(np.where(mask[:, :w], ctx[:, :w], -1),
                                      np.where(mask[:, :w], c[:, None] - d, -1))
        np.testing.assert_array_equal(np.where(mask[:, w:], ctx[:, w:], -1),
                                      np.where(mask[:, w:], c[:, None] + d, -1))
        np.testing.assert_array_equal(mask[inner, :w], mask[inner, w:])  # one b for both sides
        assert (np.diff(mask[inner, :w].astype(int), axis=1) <= 0).all()  # the nearest first, no gaps
        assert (ctx[~mask] == 0).all()  # unused slots hold 0
        filled += mask[inner, :w].sum(0)
        rows += inner.sum()
    np.testing.assert_allclose(filled / rows, (w - np.arange(1, w + 1) + 1) / w, atol=0.03)


def test_discarded_words_vanish_so_windows_reach_past_them() -> None:
    """tokens 10, 0, 11, 0, 12, ... with 0 excluded: the nearest kept words are 2 positions away."""
    tokens = np.zeros(400, dtype=np.uint16)
    tokens[::2] = 10 + np.arange(200)
    src = Word2VecBatches(tokens, vocab_size=210, batch_size=64, seed=0,
                          cfg=Word2VecBatchConfig(window=2, subsample=0.0), exclude_ids=[0])
    b = src.batch(0)
    c, ctx, mask = b["center"], b["context"], b["context_mask"]
    assert (c != 0).all() and (ctx[mask] != 0).all() and (b["negatives"] != 0).all()
    inner = (c > 12) & (c < 207)
    assert mask[inner, 0].all() and mask[inner, 2].all()  # b >= 1 on both sides
    assert (ctx[inner, 0] == c[inner] - 1).all() and (ctx[inner, 2] == c[inner] + 1).all()


def test_a_center_at_the_start_has_no_left_context() -> None:
    src = Word2VecBatches(np.array([5, 6, 7], dtype=np.uint16), vocab_size=8, batch_size=200, seed=0,
                          cfg=Word2VecBatchConfig(window=3, subsample=0.0))
    b = src.batch(0)
    first = b["center"] == 5
    assert first.any() and not b["context_mask"][first, :3].any()
    assert (b["context"][first, 3] == 6).all()


def test_batches_are_a_pure_function_of_seed_step_micro() -> None:
    cfg = Word2VecBatchConfig(window=3, subsample=0.01)
    tokens = np.random.default_rng(1).integers(0, 50, 3000).astype(np.uint16)
    a = Word2VecBatches(tokens, 50, 32, seed=7, cfg=cfg)
    b = Word2VecBatches(tokens, 50, 32, seed=7, cfg=cfg)
    for key, value in a.batch(5, 1).items():
        torch.testing.assert_close(value, b.batch(5, 1)[key])
    assert not torch.equal(a.batch(5, 1)["center"], a.batch(5, 0)["center"])
    assert not torch.equal(a.batch(5, 1)["center"], a.batch(6, 1)["center"])
    other_seed = Word2VecBatches(tokens, 50, 32, seed=8, cfg=cfg)
    assert not torch.equal(a.batch(5, 1)["center"], other_seed.batch(5, 1)["center"])


def test_a_stream_of_excluded_ids_only_is_a_data_error() -> None:
    with pytest.raises(DataError, match="negatives"):
        Word2VecBatches(np.zeros(10, dtype=np.uint16), 3, 4, 0, Word2VecBatchConfig(), exclude_ids=[0])
