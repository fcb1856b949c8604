"""The denoising-autoencoder noise against a naive per-row loop, and the batch layout the objective reads."""

from __future__ import annotations

import numpy as np
import pytest

from fromzero.config import from_dict
from fromzero.data.denoising_text_batches import DenoisingTextBatches, DenoisingTextConfig, corrupt
from fromzero.data.loader import IGNORE_INDEX
from fromzero.errors import ConfigError

MASK = 99


def naive_corrupt(rows: list[list[int]], cfg: DenoisingTextConfig, u: dict[str, np.ndarray]) -> list[list[int]]:
    """The noises written from their definitions, one row and one token at a time (u[name][row, j])."""
    out = []
    for r, x in enumerate(rows):
        x = list(x)
        for name in cfg.noise:
            if name == "drop":
                kept = [t for j, t in enumerate(x) if u[name][r, j] >= cfg.p_drop]
                x = kept if kept else x[:1]
            elif name == "shuffle":
                keys = [j + u[name][r, j] * (cfg.shuffle_k + 1) for j in range(len(x))]
                x = [x[j] for j in sorted(range(len(x)), key=lambda j: keys[j])]
            else:
                x = [MASK if u[name][r, j] < cfg.p_mask else t for j, t in enumerate(x)]
        out.append(x)
    return out


@pytest.mark.parametrize("noise", [["drop", "shuffle", "mask"], ["mask", "drop"], ["shuffle"], []])
def test_corrupt_equals_a_naive_loop_on_a_fixed_seed(noise: list[str]) -> None:
    cfg = DenoisingTextConfig(noise=noise, p_drop=0.3, shuffle_k=2, p_mask=0.25, min_length=1)
    gen = np.random.default_rng(5)
    B, L = 64, 12
    lengths = gen.integers(1, L + 1, size=B)
    ids = np.where(np.arange(L)[None] < lengths[:, None], gen.integers(3, 50, size=(B, L)), 0)
    got, got_len = corrupt(ids, lengths, cfg, np.random.default_rng(11), MASK)
    draws = np.random.default_rng(11)
    u = {name: draws.random((B, L)) for name in noise}  # one (B, L) array per noise, in order
    want = naive_corrupt([list(row[:n]) for row, n in zip(ids, lengths, strict=True)], cfg, u)
    assert [list(row[:n]) for row, n in zip(got, got_len, strict=True)] == want
    assert got_len.min() >= 1


def test_noise_rates_and_the_shuffle_bound() -> None:
    B, L, k = 400, 30, 3
    ids = np.tile(np.arange(1, L + 1), (B, 1))  # token = position + 1: displacements are readable
    lengths = np.full(B, L)
    shuffled, _ = corrupt(ids, lengths, DenoisingTextConfig(noise=["shuffle"], shuffle_k=k), np.random.default_rng(0),
                          MASK)
    moved = np.abs(shuffled - ids)
    assert moved.max() <= k and (moved > 0).mean() > 0.3  # bounded, and it does move tokens
    assert (np.sort(shuffled, axis=1) == ids).all()  # a permutation of each row
    _, kept = corrupt(ids, lengths, DenoisingTextConfig(noise=["drop"], p_drop=0.2), np.random.default_rng(1), MASK)
    assert abs(1 - kept.sum() / (B * L) - 0.2) < 0.02
    masked, _ = corrupt(ids, lengths, DenoisingTextConfig(noise=["mask"], p_mask=0.3), np.random.default_rng(2), MASK)
    assert abs((masked == MASK).mean() - 0.3) < 0.02


def test_batches_layout_and_determinism() -> None:
    tokens = np.arange(3, 503) % 40 + 3
    src = DenoisingTextBatches(tokens, 10, 16, seed=4, cfg=DenoisingTextConfig(min_length=4), pad_id=0, eos_id=1,
                               decoder_start_id=2, mask_id=MASK)
    b = src.batch(3, 1)
    for key in ("input_ids", "attention_mask", "decoder_input_ids", "labels"):
        assert b[key].shape == (16, 11), key
        assert (b[key] == src.batch(3, 1)[key]).all()  # a pure function of (seed, step, micro): resume is exact
    assert not (b["input_ids"] == src.batch(4, 1)["input_ids"]).all()
    stream = tokens.tolist()
    for row in range(16):
        labels = b["labels"][row]
        n = int((labels != IGNORE_INDEX).sum()) - 1  # x_1..x_n, eos
        x = labels[:n].tolist()
        assert 4 <= n <= 10 and labels[n] == 1
        assert any(stream[s:s + n] == x for s in range(len(stream) - n + 1))  # a window of the stream
        assert b["decoder_input_ids"][row, 0] == 2 and b["decoder_input_ids"][row, 1:n + 1].tolist() == x
        m = int(b["attention_mask"][row].sum()) - 1  # corrupted tokens, then eos
        assert b["input_ids"][row, m] == 1 and (b["input_ids"][row, m + 1:] == 0).all() and 1 <= m <= n


@pytest.mark.parametrize(("values", "message"), [
    ({"noise": ["drop", "blur"]}, "objective.noise.*unknown noise 'blur'"),
    ({"p_drop": 1.0}, "objective.p_drop"), ({"shuffle_k": -1}, "objective.shuffle_k"),
    ({"min_length": 0}, "objective.min_length")])
def test_bad_settings_are_one_line_config_errors(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        from_dict(DenoisingTextConfig, values, file="r.yaml", prefix="objective")
    assert "\n" not in str(err.value)


def test_min_length_longer_than_the_window_is_named() -> None:
    with pytest.raises(ConfigError, match="objective.min_length: 20 exceeds"):
        DenoisingTextBatches(np.arange(100), 10, 4, 0, DenoisingTextConfig(min_length=20), pad_id=0, eos_id=1,
                             decoder_start_id=0, mask_id=None)
