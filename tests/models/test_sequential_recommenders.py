"""SASRec and BERT4Rec: padding invariance, causality, scoring, occlusion, safetensors, learning a rule."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_model, save_model

from fromzero.errors import ConfigError
from fromzero.models import create_model, model_config

N_ITEMS = 23  # catalogue size; PAD = 23, MASK = 24
TINY = {"n_items": N_ITEMS, "n_layer": 2, "dim": 16, "n_head": 2, "max_len": 12, "dropout": 0.0, "init_std": 0.3}
FAMILIES = ["sasrec", "bert4rec"]


def tiny(family: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(family, **{**TINY, **kw}).eval()


def left_pad(seqs: list[list[int]], length: int) -> torch.Tensor:
    """(B, length) LEFT-padded with PAD, each row's items right-aligned."""
    return torch.tensor([[N_ITEMS] * (length - len(s)) + s for s in seqs])


SEQS = [[3, 7, 1, 19], [5], [2, 4, 6, 8, 10, 12, 14]]


@pytest.mark.parametrize("family", FAMILIES)
def test_left_padding_does_not_change_scores(family):
    model = tiny(family, max_len=24)
    with torch.no_grad():
        short = model.score_all({"history": left_pad(SEQS, 10)})
        long = model.score_all({"history": left_pad(SEQS, 20)})
        alone = model.score_all({"history": torch.tensor([SEQS[2]])})  # no padding at all
    assert short.shape == (3, N_ITEMS)
    torch.testing.assert_close(short, long, atol=1e-5, rtol=0)
    torch.testing.assert_close(short[2:], alone, atol=1e-5, rtol=0)
    assert (short[0] - short[1]).abs().max() > 1e-3  # different histories, different scores


def test_sasrec_is_causal():
    model = tiny("sasrec")
    seq = torch.tensor([[4, 9, 1, 15, 7, 2, 11, 0]])
    changed = seq.clone()
    changed[0, 5] = 20
    with torch.no_grad():
        a, b = model(seq), model(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5], atol=0, rtol=0)
    assert (a[:, 5:] - b[:, 5:]).abs().amax(-1).min() > 1e-4  # position t and after do see it


def test_bert4rec_is_bidirectional():
    model = tiny("bert4rec")
    seq = torch.tensor([[4, 9, 1, 15, 7, 2, 11, 0]])
    changed = seq.clone()
    changed[0, 5] = 20
    with torch.no_grad():
        a, b = model(seq), model(changed)
    assert (a - b).abs().amax(-1).min() > 1e-4  # every position, earlier ones included, sees the change


@pytest.mark.parametrize("family", FAMILIES)
def test_item_logits_are_tied_to_the_item_table(family):
    model = tiny(family)
    emb = model.encoder.item_emb.weight.detach()
    assert emb.shape == (N_ITEMS + 2, 16)
    assert torch.all(emb[N_ITEMS] == 0)  # PAD row starts at zero
    hidden = torch.randn(2, 3, 16)
    logits = model.item_logits(hidden)
    naive = torch.tensor([[[float(hidden[b, t] @ emb[i]) for i in range(N_ITEMS)] for t in range(3)] for b in range(2)])
    torch.testing.assert_close(logits, naive, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_pad_row_stays_zero_through_training(family):
    model = tiny(family).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    hist = left_pad([[1, 2, 3], [4, 5, 6, 7, 8]], 6)
    model.item_logits(model(hist)).sum().backward()
    opt.step()
    assert torch.all(model.encoder.item_emb.weight[N_ITEMS] == 0)


def test_sasrec_score_all_reads_the_last_position_of_the_most_recent_items():
    model = tiny("sasrec")
    hist = torch.randint(0, N_ITEMS, (2, 20))  # longer than max_len=12: the 12 most recent are read
    with torch.no_grad():
        expected = model.encoder.item_emb.weight[:N_ITEMS] @ model(hist[:, -12:])[:, -1].T  # (N_ITEMS, B)
        torch.testing.assert_close(model.score_all({"history": hist}), expected.T, atol=1e-5, rtol=1e-5)


def test_bert4rec_score_all_appends_mask_and_drops_the_oldest():
    model = tiny("bert4rec")
    mask = N_ITEMS + 1
    hist = torch.randint(0, N_ITEMS, (2, 12))  # full: MASK makes 13 > max_len, the oldest goes
    with torch.no_grad():
        manual = torch.cat([hist[:, 1:], torch.full((2, 1), mask)], 1)
        expected = model.item_logits(model(manual)[:, -1])
        torch.testing.assert_close(model.score_all({"history": hist}), expected, atol=1e-6, rtol=0)
        short = left_pad([[3, 5]], 4)
        expected = model.item_logits(model(torch.tensor([[N_ITEMS, N_ITEMS, 3, 5, mask]]))[:, -1])
        torch.testing.assert_close(model.score_all({"history": short}), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_history_contributions_match_naive_occlusion(family):
    model = tiny(family)
    hist = left_pad(SEQS, 8)
    items = torch.tensor([[0, 5, 22], [1, 1, 7], [9, 3, 4]])
    with torch.no_grad():
        got = model.history_contributions({"history": hist}, items)
        full = model.score_all({"history": hist})
    assert got.shape == (3, 3, 8)
    for b in range(3):
        for col in range(8):
            if hist[b, col] == N_ITEMS:
                assert torch.all(got[b, :, col] == 0)
                continue
            occluded = hist[b:b + 1].clone()
            occluded[0, col] = N_ITEMS
            with torch.no_grad():
                partial = model.score_all({"history": occluded})[0]
            for k in range(3):
                want = float(full[b, items[b, k]] - partial[items[b, k]])
                assert abs(float(got[b, k, col]) - want) < 1e-5
    assert got.abs().max() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_safetensors_round_trip_gives_identical_scores(family, tmp_path):
    model = tiny(family)
    hist = left_pad(SEQS, 9)
    path = tmp_path / "model.safetensors"
    save_model(model, str(path))
    torch.manual_seed(5)  # a differently initialised copy, so the load has to overwrite everything
    other = create_model(family, **{**TINY, "init_std": 0.1}).eval()
    load_model(other, str(path), strict=True)
    with torch.no_grad():
        assert torch.equal(model.score_all({"history": hist}), other.score_all({"history": hist}))


@pytest.mark.parametrize("preset, family", [("sasrec-small", "sasrec"), ("bert4rec-small", "bert4rec")])
def test_presets_and_config_errors(preset, family):
    cfg = model_config(preset, {"n_items": 9066, "n_users": 671})
    assert (cfg.n_layer, cfg.dim, cfg.n_head, cfg.max_len) == (2, 64, 2, 50)
    model = create_model(preset, n_items=9066, n_users=671)
    assert model.encoder.item_emb.weight.shape == (9068, 64)
    with pytest.raises(ConfigError, match="dim"):
        model_config(family, {"n_items": 5, "dim": 10, "n_head": 3})
    with pytest.raises(ConfigError, match="dropout"):
        model_config(family, {"n_items": 5, "dropout": 1.5})
