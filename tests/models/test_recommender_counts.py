"""Count-based recommenders (popularity, item-kNN, content-based) against hand-computed values and naive
numpy implementations; their state round-trips through safetensors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_model, save_model

from fromzero.errors import ConfigError
from fromzero.models import create_model, item_knn
from fromzero.models.registry import model_config


def _batch(histories: list[list[int]], ratings: list[list[float]] | None, n_items: int) -> dict[str, torch.Tensor]:
    """Left-padded with PAD = n_items, as RankingBatches builds them."""
    length = max(1, max(len(h) for h in histories))
    history = torch.full((len(histories), length), n_items, dtype=torch.int64)
    rating = torch.zeros(len(histories), length)
    for b, items in enumerate(histories):
        if items:
            history[b, length - len(items):] = torch.tensor(items)
            rating[b, length - len(items):] = torch.tensor(ratings[b] if ratings else [1.0] * len(items))
    return {"user": torch.arange(len(histories)), "history": history, "history_rating": rating}


def _round_trip(model: torch.nn.Module, name: str, overrides: dict, batch: dict, tmp_path: Path) -> None:
    save_model(model, str(tmp_path / "model.safetensors"))
    fresh = create_model(name, **overrides)
    load_model(fresh, str(tmp_path / "model.safetensors"))
    assert torch.equal(fresh.score_all(batch), model.score_all(batch))


# ------------------------------------------------------------------------------------------------ popularity
def test_popularity_counts_by_hand(tmp_path: Path) -> None:
    model = create_model("popularity", n_users=3, n_items=4)
    # item 1 three times, item 3 twice, item 0 once, item 2 never (cold start)
    model.fit(torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([1, 1, 1, 3, 3, 0]), torch.ones(6))
    batch = _batch([[0], [], [2, 3]], None, 4)
    assert model.score_all(batch).tolist() == [[1, 3, 0, 2]] * 3
    assert torch.equal(model.history_contributions(batch, torch.tensor([[1, 3]] * 3)), torch.zeros(3, 2, 2))
    _round_trip(model, "popularity", {"n_users": 3, "n_items": 4}, batch, tmp_path)
    with pytest.raises(ValueError, match="n_items = 4"):
        model.fit(torch.tensor([0]), torch.tensor([4]), torch.ones(1))


# -------------------------------------------------------------------------------------------------- item-kNN
def test_item_knn_by_hand_with_a_tie() -> None:
    # users {0,1}, {0,1,2}, {1,2}: columns r0 = (1,1,0), r1 = (1,1,1), r2 = (0,1,1)
    # sim(0,1) = 2/sqrt(6) = 0.8165, sim(0,2) = 1/2, sim(1,2) = 2/sqrt(6): item 1's two neighbours tie
    model = create_model("item-knn", n_users=3, n_items=3, neighbours=1)
    model.fit(torch.tensor([0, 0, 1, 1, 1, 2, 2]), torch.tensor([0, 1, 0, 1, 2, 1, 2]), torch.ones(7))
    s = 2 / math.sqrt(6)
    assert model.neighbour_index[:, 0].tolist() == [1, 0, 1]  # the tie goes to the lower index
    assert torch.allclose(model.neighbour_sim[:, 0], torch.tensor([s, s, s]))
    batch = _batch([[0], [0, 2], [1]], None, 3)
    expected = torch.tensor([[0, s, 0], [0, 2 * s, 0], [s, 0, 0]])
    assert torch.allclose(model.score_all(batch), expected)
    contributions = model.history_contributions(batch, torch.tensor([[1, 2], [1, 0], [0, 2]]))  # (B, K, L)
    assert torch.allclose(contributions, torch.tensor([[[0, s], [0, 0]], [[s, s], [0, 0]], [[0, s], [0, 0]]]))


def _naive_knn_scores(matrix: np.ndarray, k: int, shrinkage: float, histories: list[list[int]]) -> np.ndarray:
    """Dense float64 reference: full I x I cosine, each item's k best others by (-sim, index), summed."""
    n_items = matrix.shape[1]
    norms = np.sqrt((matrix ** 2).sum(axis=0))
    denom = np.outer(norms, norms) + shrinkage
    sim = np.divide(matrix.T @ matrix, denom, out=np.zeros((n_items, n_items)), where=denom > 0)
    scores = np.zeros((len(histories), n_items))
    for b, history in enumerate(histories):
        for h in history:
            others = sorted((j for j in range(n_items) if j != h), key=lambda j: (-sim[h, j], j))[:k]
            for j in others:
                scores[b, j] += sim[h, j]
    return scores


@pytest.mark.parametrize(("weighting", "neighbours", "shrinkage"),
                         [("binary", 14, 0.0), ("binary", 14, 2.0), ("rating", 14, 0.5), ("rating", 3, 0.0)])
def test_item_knn_matches_a_dense_reference(weighting: str, neighbours: int, shrinkage: float,
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(item_knn, "CHUNK_ELEMENTS", 40)  # 2 rows per chunk: the chunked path runs 8 times
    rng = np.random.default_rng(0)
    n_users, n_items = 12, 15
    mask = rng.random((n_users, n_items)) < 0.4
    mask[:, 14] = False  # item 14: never rated (a zero column must give 0, not NaN)
    ratings = rng.uniform(0.5, 5.0, (n_users, n_items))  # continuous: no ties in the rating-weighted case
    user, item = np.nonzero(mask)
    overrides = {"n_users": n_users, "n_items": n_items, "neighbours": neighbours, "weighting": weighting,
                 "shrinkage": shrinkage}
    model = create_model("item-knn", **overrides)
    model.fit(torch.from_numpy(user), torch.from_numpy(item), torch.from_numpy(ratings[user, item]).float())
    histories = [list(np.nonzero(mask[u])[0]) for u in range(n_users)] + [[], [14, 3]]
    batch = _batch(histories, None, n_items)
    matrix = np.where(mask, ratings if weighting == "rating" else 1.0, 0.0)
    expected = _naive_knn_scores(matrix, neighbours, shrinkage, histories)
    scores = model.score_all(batch)
    assert np.abs(expected).max() > 0.5
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-5, atol=1e-6)
    items = torch.topk(scores, 4).indices  # (B, 4)
    contributions = model.history_contributions(batch, items)  # (B, 4, L): sums to each item's score
    np.testing.assert_allclose(contributions.sum(-1).numpy(), torch.gather(scores, 1, items).numpy(), atol=1e-5)
    assert torch.all(contributions[batch["history"].unsqueeze(1).expand_as(contributions) == n_items] == 0)
    _round_trip(model, "item-knn", overrides, batch, tmp_path)


# --------------------------------------------------------------------------------------------- content-based
FEATURES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])  # item 2 normalises to (0.7071, 0.7071)


def _content(centred: bool) -> torch.nn.Module:
    model = create_model("content", n_users=2, n_items=3, n_features=2, centred=centred)
    model.item_features.copy_(FEATURES)
    return model


def test_content_by_hand() -> None:
    batch = _batch([[0], [0, 1]], [[5.0], [4.0, 2.0]], 3)
    # user 0: profile (1, 0) -> cosines 1, 0, 1/sqrt(2)
    # user 1, raw ratings: p = (4 (1,0) + 2 (0,1)) / 6, direction (2,1)/sqrt(5) -> 2/sqrt5, 1/sqrt5, 3/sqrt10
    raw = _content(centred=False).score_all(batch)
    assert torch.allclose(raw, torch.tensor([[1, 0, 2 ** -0.5], [2 / 5 ** 0.5, 1 / 5 ** 0.5, 3 / 10 ** 0.5]]))
    # centred: user 1's mean 3 -> weights +1, -1 -> direction (1,-1)/sqrt(2); user 0's only weight is 0
    centred = _content(centred=True).score_all(batch)
    assert torch.allclose(centred, torch.tensor([[0, 0, 0], [2 ** -0.5, -(2 ** -0.5), 0]]), atol=1e-6)


def _naive_content(features: np.ndarray, histories, ratings, centred: bool) -> np.ndarray:
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    out = np.zeros((len(histories), len(features)))
    for b, (items, rs) in enumerate(zip(histories, ratings, strict=True)):
        weights = np.asarray(rs) - (np.mean(rs) if centred else 0.0)
        profile = sum(w * unit[i] for w, i in zip(weights, items, strict=True)) / np.abs(weights).sum()
        for j in range(len(features)):
            out[b, j] = profile @ unit[j] / np.linalg.norm(profile)
    return out


@pytest.mark.parametrize("centred", [False, True])
def test_content_matches_a_loop_reference_and_explains_exactly(centred: bool, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n_items, n_features = 10, 6
    features = rng.random((n_items, n_features)).astype(np.float32)
    histories = [[0, 3, 5], [1, 2], [7, 8, 9, 4]]
    ratings = [[5.0, 1.0, 3.5], [2.0, 4.5], [1.0, 2.0, 3.0, 5.0]]
    overrides = {"n_users": 3, "n_items": n_items, "n_features": n_features, "centred": centred}
    model = create_model("content", **overrides)
    model.item_features.copy_(torch.from_numpy(features))
    model.fit(torch.tensor([0, 0, 0]), torch.tensor([0, 3, 5]), torch.tensor([5.0, 1.0, 3.5]))  # checks only
    batch = _batch(histories, ratings, n_items)
    scores = model.score_all(batch)
    np.testing.assert_allclose(scores.numpy(), _naive_content(features, histories, ratings, centred), atol=1e-5)
    assert scores[0, 6] != 0  # item 6 is in nobody's history (cold start) and is still scored
    items = torch.tensor([[6, 1], [0, 9], [2, 3]])
    picked = torch.gather(scores, 1, items)
    history_parts = model.history_contributions(batch, items)  # (B, K, L)
    feature_parts = model.feature_contributions(batch, items)  # (B, K, F)
    assert feature_parts.shape == (3, 2, n_features)
    torch.testing.assert_close(history_parts.sum(-1), picked, atol=1e-5, rtol=0)
    torch.testing.assert_close(feature_parts.sum(-1), picked, atol=1e-5, rtol=0)
    assert torch.all(history_parts[1, :, :2] == 0)  # user 1's two pads
    _round_trip(model, "content", overrides, batch, tmp_path)


def test_content_fit_needs_features_and_configs_need_sizes() -> None:
    model = create_model("content", n_users=2, n_items=3, n_features=2)
    with pytest.raises(ValueError, match="item_features is all zeros"):
        model.fit(torch.tensor([0]), torch.tensor([1]), torch.tensor([4.0]))
    with pytest.raises(ConfigError, match="n_items"):
        model_config("item-knn", {"n_items": 0})
    with pytest.raises(ConfigError, match="weighting"):
        model_config("item-knn", {"weighting": "tfidf"})
