"""Full-ranking metrics: hand-computed tiny cases, torchmetrics' retrieval metrics, and the seen-item rules."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.retrieval import (
    retrieval_hit_rate,
    retrieval_normalized_dcg,
    retrieval_reciprocal_rank,
)

from fromzero.eval.ranking_metrics import (
    RankingAccumulator,
    exclude_seen,
    rating_metrics,
    target_ranks,
    top_k,
)


def _seen(rows: list[list[int]], n_items: int) -> torch.Tensor:
    seen = torch.zeros(len(rows), n_items, dtype=torch.bool)
    for r, items in enumerate(rows):
        seen[r, items] = True
    return seen


# three users, six items, written out by hand:
#   A: scores .9 .5 .7 .5 .1 .3, seen {0}, target 3: unseen ahead of it = item 2 (higher) + item 1 (tied, lower
#      index) -> rank 2; ranking 2 1 3 5 4
#   B: scores .2 .8 .8 0 .6 .4, seen {1, 4}, target 2: nothing unseen is higher -> rank 0; ranking 2 5 0 3
#   C: all scores 0, seen {2}, target 4: ties go by index, 0 1 3 come first -> rank 3; ranking 0 1 3 4 5
SCORES = torch.tensor([[0.9, 0.5, 0.7, 0.5, 0.1, 0.3],
                       [0.2, 0.8, 0.8, 0.0, 0.6, 0.4],
                       [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
SEEN = _seen([[0], [1, 4], [2]], 6)
TARGETS = torch.tensor([3, 2, 4])


def test_ranks_and_top_k_by_hand() -> None:
    assert target_ranks(SCORES, SEEN, TARGETS).tolist() == [2, 0, 3]
    values, indices = top_k(SCORES, SEEN, 3)
    assert indices.tolist() == [[2, 1, 3], [2, 5, 0], [0, 1, 3]]
    assert torch.allclose(values, torch.tensor([[0.7, 0.5, 0.5], [0.8, 0.4, 0.2], [0.0, 0.0, 0.0]]))


def test_accumulator_by_hand_at_k2_and_k3() -> None:
    acc2, acc3 = RankingAccumulator(6, k=2), RankingAccumulator(6, k=3)
    for acc in (acc2, acc3):
        acc.add(SCORES[:2], SEEN[:2], TARGETS[:2])  # two batches: the sums run across them
        acc.add(SCORES[2:], SEEN[2:], TARGETS[2:])
    # k=2: only B (rank 0) hits; top-2 lists {2,1} {2,5} {0,1} cover 4 of 6 items
    r2 = acc2.result()
    assert r2["users"] == 3
    assert r2["hr_2"] == pytest.approx(1 / 3)
    assert r2["ndcg_2"] == pytest.approx(1 / 3)  # B: 1/log2(0+2) = 1
    assert r2["mrr"] == pytest.approx((1 / 3 + 1 + 1 / 4) / 3)  # = 19/36
    assert r2["coverage_2"] == pytest.approx(4 / 6)
    # k=3: A (rank 2) now hits with 1/log2(4) = 0.5; top-3 lists add item 3 -> {0,1,2,3,5}
    r3 = acc3.result()
    assert r3["hr_3"] == pytest.approx(2 / 3)
    assert r3["ndcg_3"] == pytest.approx((0.5 + 1.0) / 3)
    assert r3["mrr"] == pytest.approx(19 / 36)
    assert r3["coverage_3"] == pytest.approx(5 / 6)
    assert acc3.ranks().tolist() == [2, 0, 3]


def test_ndcg_of_a_deep_hit_by_hand() -> None:
    acc = RankingAccumulator(6, k=4)
    acc.add(SCORES[2:], SEEN[2:], TARGETS[2:])  # C: rank 3 -> 1/log2(5)
    assert acc.result()["ndcg_4"] == pytest.approx(1 / math.log2(5)) == pytest.approx(0.430677, abs=1e-6)


def test_agrees_with_torchmetrics_on_untied_scores() -> None:
    g = torch.Generator().manual_seed(0)
    n_users, n_items, k = 40, 30, 10
    scores = torch.rand(n_users, n_items, generator=g)  # continuous: no ties, where every tie rule agrees
    seen = torch.rand(n_users, n_items, generator=g) < 0.3
    targets = torch.stack([torch.nonzero(~row)[torch.randint(int((~row).sum()), (1,), generator=g)][0, 0]
                           for row in seen])
    acc = RankingAccumulator(n_items, k=k)
    acc.add(scores, seen, targets)
    hr, ndcg, rr = [], [], []
    for u in range(n_users):
        keep = ~seen[u]  # seen items removed from the candidate list entirely
        relevant = torch.zeros(n_items, dtype=torch.bool)
        relevant[targets[u]] = True
        preds, rel = scores[u, keep], relevant[keep]
        hr.append(retrieval_hit_rate(preds, rel, top_k=k))
        ndcg.append(retrieval_normalized_dcg(preds, rel, top_k=k))
        rr.append(retrieval_reciprocal_rank(preds, rel))
    result = acc.result()
    assert 0 < result["hr_10"] < 1  # the case is not degenerate
    assert result["hr_10"] == pytest.approx(float(torch.stack(hr).mean()))
    assert result["ndcg_10"] == pytest.approx(float(torch.stack(ndcg).mean()), abs=1e-6)
    assert result["mrr"] == pytest.approx(float(torch.stack(rr).mean()), abs=1e-6)


def test_top_k_never_returns_a_seen_item_and_agrees_with_ranks() -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 3, (50, 20), generator=g).float()  # many ties
    scores[scores < 2] = float("-inf")  # unseen items a model scores -inf must still rank before seen ones
    seen = torch.rand(50, 20, generator=g) < 0.5
    seen[:, 15:] = False  # every row keeps at least 5 unseen items, after the seen -inf ones in index order
    _, indices = top_k(scores, seen, 5)
    assert not bool(torch.gather(seen, 1, indices).any())
    for u in range(50):  # HR@5 == target in top_k, for every unseen target, under the shared tie rule
        for target in torch.nonzero(~seen[u])[:, 0]:
            rank = int(target_ranks(scores[u:u + 1], seen[u:u + 1], target.view(1)))
            assert (rank < 5) == (int(target) in indices[u].tolist())
            if rank < 5:
                assert indices[u, rank] == target


def test_protocol_errors() -> None:
    with pytest.raises(ValueError, match="marked seen"):
        target_ranks(SCORES, SEEN, torch.tensor([0, 2, 4]))  # user A's target 0 is in their history
    with pytest.raises(ValueError, match="unseen items"):
        top_k(SCORES, SEEN, 5)  # user B has only 4 unseen items
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(torch.full((1, 3), float("nan")), torch.zeros(1, 3, dtype=torch.bool), torch.tensor([1]))
    with pytest.raises(ValueError, match="no users"):
        RankingAccumulator(6).result()


def test_exclude_seen_copies() -> None:
    scores = SCORES.clone()
    out = exclude_seen(scores, SEEN)
    assert torch.equal(scores, SCORES)
    assert out[0, 0] == float("-inf") and out[1, 4] == float("-inf") and out[0, 1] == 0.5


def test_rating_metrics_by_hand() -> None:
    # errors -1, 0, -2: MSE = 5/3, MAE = 1
    got = rating_metrics(torch.tensor([1.0, 2.0, 3.0]), [2.0, 2.0, 5.0])
    assert got["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert got["mae"] == pytest.approx(1.0)
