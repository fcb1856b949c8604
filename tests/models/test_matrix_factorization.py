"""Matrix factorisation: every scoring method against the formula computed entry by entry, unknown users,
history explanations against a naive cosine loop, config errors, and a safetensors round trip."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_model, save_model

from fromzero.errors import ConfigError
from fromzero.models import create_model, model_config
from fromzero.models.matrix_factorization import MatrixFactorization, MFConfig

U, N_ITEMS = 4, 6


def _model(with_bias: bool = True) -> MatrixFactorization:
    torch.manual_seed(0)
    model = MatrixFactorization(MFConfig(n_users=U, n_items=N_ITEMS, dim=3, with_bias=with_bias))
    if with_bias:
        with torch.no_grad():
            model.user_bias.weight.normal_()
            model.item_bias.weight.normal_()
        model.set_global_mean(3.5)
    return model


def _naive(model: MatrixFactorization, u: int, i: int) -> float:
    p, q = model.user_factors.weight[u].tolist(), model.item_factors.weight[i].tolist()
    value = sum(a * b for a, b in zip(p, q, strict=True))
    if model.config.with_bias:
        value += 3.5 + model.user_bias.weight[u, 0].item() + model.item_bias.weight[i, 0].item()
    return value


@pytest.mark.parametrize("with_bias", [True, False])
def test_every_score_is_the_biased_dot_product(with_bias: bool) -> None:
    model = _model(with_bias)
    users = torch.arange(U)
    with torch.no_grad():
        every = model.score_all({"user": users})  # (U, I)
        items = torch.tensor([[5, 0], [1, 1], [2, 3], [4, 2]])
        some = model.score_items({"user": users}, items)
        pairs = model.predict_rating(torch.tensor([0, 3]), torch.tensor([2, 5]))
    for u in range(U):
        for i in range(N_ITEMS):
            assert every[u, i].item() == pytest.approx(_naive(model, u, i), abs=1e-5)
        for k in range(2):
            assert some[u, k].item() == pytest.approx(_naive(model, u, int(items[u, k])), abs=1e-5)
    assert pairs.tolist() == pytest.approx([_naive(model, 0, 2), _naive(model, 3, 5)], abs=1e-5)


def test_unknown_user_gets_the_global_mean_plus_item_bias() -> None:
    model = _model()
    with torch.no_grad():
        scores = model.score_all({"user": torch.tensor([-1, 1])})
    expected = [3.5 + b for b in model.item_bias.weight[:, 0].tolist()]
    assert scores[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert scores[1].tolist() != pytest.approx(expected, abs=1e-3)
    assert _model(with_bias=False).score_all({"user": torch.tensor([-1])}).abs().max().item() == 0.0


def test_history_contributions_are_cosines_and_zero_at_pads() -> None:
    model = _model()
    pad = N_ITEMS
    batch = {"user": torch.tensor([0, 1]), "history": torch.tensor([[pad, 2, 4], [1, 3, 0]])}
    items = torch.tensor([[5, 2], [0, 4]])
    with torch.no_grad():
        got = model.history_contributions(batch, items)  # (B, K, L)
    assert got.shape == (2, 2, 3)
    f = model.item_factors.weight.tolist()
    for b in range(2):
        for k in range(2):
            for position in range(3):
                h, i = int(batch["history"][b, position]), int(items[b, k])
                if h == pad:
                    want = 0.0
                else:
                    dot = sum(x * y for x, y in zip(f[h], f[i], strict=True))
                    want = dot / math.sqrt(sum(x * x for x in f[h]) * sum(y * y for y in f[i]))
                assert got[b, k, position].item() == pytest.approx(want, abs=1e-5)
    assert got[0, 1, 1].item() == pytest.approx(1.0, abs=1e-6)  # an item is most similar to itself


def test_presets_and_bad_config() -> None:
    assert create_model("mf-explicit", n_users=3, n_items=5).config.dim == 32
    assert create_model("mf-bpr", n_users=3, n_items=5).item_factors.weight.shape == (5, 64)
    with pytest.raises(ConfigError, match=r"model\.dim"):
        model_config("mf", {"n_users": 3, "n_items": 5, "dim": 0})
    with pytest.raises(ConfigError, match=r"model\.n_items"):
        model_config("mf-bpr", {"n_users": 3, "n_items": 0})


def test_safetensors_round_trip_keeps_scores_and_global_mean(tmp_path) -> None:
    model = _model()
    save_model(model, str(tmp_path / "model.safetensors"))
    fresh = MatrixFactorization(model.config)
    load_model(fresh, str(tmp_path / "model.safetensors"))
    batch = {"user": torch.tensor([-1, 0, 3])}
    with torch.no_grad():
        assert torch.equal(fresh.score_all(batch), model.score_all(batch))
    assert fresh.global_mean.item() == 3.5
