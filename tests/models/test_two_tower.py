"""The two-tower hybrid: cold items scored from features alone, id dropout governed by the global RNG, the user
tower and the exact history decomposition against naive loops, a safetensors round trip, and a tiny BPR run
that ranks unseen (cold) items by their features."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_model, save_model

from fromzero.models import create_model
from fromzero.models.two_tower import TwoTower, TwoTowerConfig
from fromzero.objectives.bpr import BPR

U, N_ITEMS, F = 3, 5, 4
PAD = N_ITEMS


def _model(**overrides) -> TwoTower:
    torch.manual_seed(0)
    model = TwoTower(TwoTowerConfig(**{"n_users": U, "n_items": N_ITEMS, "n_features": F, "dim": 3, "hidden": 8,
                                        "id_dropout": 0.5, **overrides}))
    model.item_features.copy_(torch.randn(N_ITEMS, F))
    return model.eval()


def _batch() -> dict[str, torch.Tensor]:
    return {"user": torch.tensor([0, -1, 2]), "history": torch.tensor([[PAD, 1, 2], [4, 4, 0], [PAD, PAD, PAD]])}


@pytest.mark.parametrize("training", [False, True])
def test_cold_item_score_depends_only_on_its_features(training: bool) -> None:
    model = _model(id_dropout=0.0)
    model.warm_items[3] = False
    model.train(training)
    batch, items = _batch(), torch.tensor([[3, 0], [3, 1], [3, 2]])
    with torch.no_grad():
        before, all_before = model.score_items(batch, items), model.score_all(batch)
        model.item_ids.weight[3].add_(10.0)  # a cold item's id embedding is never read
        after, all_after = model.score_items(batch, items), model.score_all(batch)
        assert torch.equal(before, after) and torch.equal(all_before[:, 3], all_after[:, 3])
        model.item_ids.weight[0].add_(10.0)  # a warm item's is
        assert not torch.allclose(model.score_items(batch, items)[:, 1], after[:, 1])
        model.item_features[3].add_(1.0)  # and the cold item's features are
        assert not torch.allclose(model.score_items(batch, items)[:, 0], after[:, 0])


def test_id_dropout_follows_the_global_rng_and_is_off_in_eval() -> None:
    model = _model(id_dropout=0.5)
    with torch.no_grad():
        evaluated = model.item_vectors()
        full = model.content(model.item_features)[:, :-1] + model.item_ids.weight[:, :-1]
        assert torch.allclose(evaluated, full, atol=1e-6)
        model.train()
        torch.manual_seed(7)
        first = model.item_vectors()
        torch.manual_seed(7)
        assert torch.equal(model.item_vectors(), first)
        content = model.content(model.item_features)[:, :-1]
        # every row is either content alone or content + id, and both kinds occur in 20 draws
        kinds = set()
        for _ in range(20):
            dropped = torch.isclose(model.item_vectors(), content, atol=1e-6).all(-1)
            kinds.update(dropped.tolist())
        assert kinds == {True, False}


def test_user_vectors_and_exact_history_decomposition() -> None:
    model = _model()
    batch, items = _batch(), torch.tensor([[0, 4], [1, 2], [3, 3]])
    with torch.no_grad():
        v, b = model.item_vectors(), model.item_biases()  # (I, D), (I,)
        users = model.user_vectors(batch)
        contributions = model.history_contributions(batch, items)  # (B, K, L)
        scores = model.score_items(batch, items)
        every = model.score_all(batch)
        w = model.history_map.weight
    for row in range(3):
        real = [h for h in batch["history"][row].tolist() if h != PAD]
        mean = sum((v[h] for h in real), torch.zeros(3)) / max(len(real), 1)
        user = int(batch["user"][row])
        e_u = model.user_ids.weight[user] if user >= 0 else torch.zeros(3)
        assert torch.allclose(users[row], w @ mean + e_u, atol=1e-5)
        for k in range(2):
            i = int(items[row, k])
            assert scores[row, k].item() == pytest.approx((users[row] @ v[i] + b[i]).item(), abs=1e-5)
            assert every[row, i].item() == pytest.approx(scores[row, k].item(), abs=1e-5)
            for position, h in enumerate(batch["history"][row].tolist()):
                want = 0.0 if h == PAD else ((w @ v[h]) @ v[i]).item() / len(real)
                assert contributions[row, k, position].item() == pytest.approx(want, abs=1e-5)
            rest = scores[row, k] - e_u @ v[i] - b[i]
            assert contributions[row, k].sum().item() == pytest.approx(rest.item(), abs=1e-5)


def test_safetensors_round_trip_keeps_scores(tmp_path) -> None:
    model = _model()
    model.warm_items[1] = False
    save_model(model, str(tmp_path / "model.safetensors"))
    fresh = TwoTower(model.config).eval()
    load_model(fresh, str(tmp_path / "model.safetensors"))
    with torch.no_grad():
        assert torch.equal(fresh.score_all(_batch()), model.score_all(_batch()))
    assert not fresh.warm_items[1] and torch.equal(fresh.item_features, model.item_features)


def test_bpr_training_ranks_cold_items_by_their_features() -> None:
    """Two genres; each user likes one. Items 0-7 are seen in training, 8 (genre A) and 9 (genre B) are cold:
    after training, A-fans must rank 8 above 9 and B-fans the reverse, which only the content path can do."""
    torch.manual_seed(0)
    n_users, n_items = 8, 10
    genre = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    model = create_model("two-tower", n_users=n_users, n_items=n_items, n_features=2, dim=8, hidden=16)
    model.item_features.copy_(torch.nn.functional.one_hot(genre, 2).float())
    model.warm_items.copy_(torch.arange(n_items) < 8)
    taste = torch.arange(n_users) % 2  # (U,) the genre each user likes
    liked = [torch.nonzero(genre[:8] == t).flatten() for t in taste.tolist()]
    history = torch.stack([row[:3] for row in liked])  # (U, 3)
    objective, optimizer = BPR(), torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(150):
        positive = torch.stack([row[torch.randint(4, ())] for row in liked])  # (U,)
        negative = torch.stack([torch.nonzero(genre[:8] != t).flatten()[torch.randint(4, (2,))]
                                for t in taste.tolist()])  # (U, 2)
        out = objective(model, {"user": torch.arange(n_users), "item": positive, "negative": negative,
                                "history": history})
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        scores = model.score_all({"user": torch.arange(n_users), "history": history})
    prefers_a = scores[:, 8] > scores[:, 9]  # (U,)
    assert torch.equal(prefers_a, taste == 0)
    assert out.metrics["auc"].item() > 0.9
