"""Batches: RandomWindows is a pure function of (seed, step, micro); sequential_windows covers once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fromzero.data.loader import IGNORE_INDEX, RandomWindows, batch_seed, sequential_windows, splitmix64
from fromzero.errors import DataError

TOKENS = np.random.default_rng(0).integers(0, 60_000, size=1_000, dtype=np.uint16)


def test_splitmix64_reference_values() -> None:
    # First outputs of the reference SplitMix64 generator seeded with 0 (Vigna's splitmix64.c).
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4
    assert batch_seed(1, 2, 3) != batch_seed(1, 3, 2)
    assert batch_seed(0, 0, 4099) != batch_seed(0, 1, 0)


def test_batch_is_pure_function_of_seed_step_micro() -> None:
    a = RandomWindows(TOKENS, seq_len=16, batch_size=4, seed=3)
    b = RandomWindows(TOKENS, seq_len=16, batch_size=4, seed=3)
    late = a.batch(7)
    for step in range(7):
        b.batch(step)
    for x, y in [(late, b.batch(7)), (a.batch(7, micro=1), b.batch(7, micro=1))]:
        assert torch.equal(x["input_ids"], y["input_ids"]) and torch.equal(x["labels"], y["labels"])
    assert not torch.equal(a.batch(7, micro=1)["input_ids"], late["input_ids"])
    assert not torch.equal(a.batch(8)["input_ids"], late["input_ids"])
    other_seed = RandomWindows(TOKENS, seq_len=16, batch_size=4, seed=4)
    assert not torch.equal(other_seed.batch(7)["input_ids"], late["input_ids"])


def test_windows_match_tokens() -> None:
    loader = RandomWindows(TOKENS, seq_len=16, batch_size=8, seed=0)
    assert loader.tokens_per_batch == 128
    batch = loader.batch(5, micro=2)
    assert batch["input_ids"].shape == batch["labels"].shape == (8, 16)
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long
    assert torch.equal(batch["labels"][:, :-1], batch["input_ids"][:, 1:])
    for row, start in enumerate(loader.offsets(5, micro=2).tolist()):
        assert batch["input_ids"][row].tolist() == TOKENS[start : start + 16].tolist()
        assert batch["labels"][row].tolist() == TOKENS[start + 1 : start + 17].tolist()


def test_offsets_cover_the_full_range() -> None:
    tokens = np.arange(20, dtype=np.uint32)
    loader = RandomWindows(tokens, seq_len=15, batch_size=64, seed=1)
    starts = torch.cat([loader.offsets(step) for step in range(20)])
    assert starts.min() == 0 and starts.max() == len(tokens) - 15 - 1
    exact = RandomWindows(np.arange(9), seq_len=8, batch_size=2, seed=0)  # exactly seq_len + 1 tokens
    assert exact.offsets(0).tolist() == [0, 0]


def test_too_short_data() -> None:
    with pytest.raises(DataError, match=r"has 8 tokens but seq_len=8 needs at least 9; use a shorter seq_len"):
        RandomWindows(np.arange(8), seq_len=8, batch_size=1, seed=0)


def _naive_windows(tokens: np.ndarray, seq_len: int) -> list[tuple[list[int], list[int]]]:
    """Non-overlapping (inputs, targets) windows, the last one shorter."""
    out = []
    for start in range(0, len(tokens) - 1, seq_len):
        end = min(start + seq_len, len(tokens) - 1)
        out.append((tokens[start:end].tolist(), tokens[start + 1 : end + 1].tolist()))
    return out


@pytest.mark.parametrize("n_tokens", [2, 33, 64, 65, 1_000])
def test_sequential_windows_match_naive_reference(n_tokens: int) -> None:
    tokens = TOKENS[:n_tokens]
    batches = list(sequential_windows(tokens, seq_len=16, batch_size=3))
    rows = [
        (batch["input_ids"][r], batch["labels"][r], batch["loss_mask"][r])
        for batch in batches
        for r in range(batch["input_ids"].shape[0])
    ]
    expected = _naive_windows(tokens, 16)
    assert len(rows) == len(expected)
    assert all(b["input_ids"].shape[0] == 3 for b in batches[:-1])
    for (inputs, labels, mask), (want_inputs, want_labels) in zip(rows, expected, strict=True):
        n = len(want_inputs)
        assert inputs[:n].tolist() == want_inputs and labels[:n].tolist() == want_labels
        assert mask.tolist() == [True] * n + [False] * (16 - n)
        assert (labels[n:] == IGNORE_INDEX).all()
    scored = torch.cat([b["labels"][b["loss_mask"]] for b in batches])
    assert scored.tolist() == tokens[1:].tolist()  # every target exactly once, in order


@pytest.mark.parametrize("stride", [1, 5, 12])
def test_strided_windows_score_each_token_once(stride: int) -> None:
    tokens = TOKENS[:100]
    batches = list(sequential_windows(tokens, seq_len=12, batch_size=4, stride=stride))
    scored = torch.cat([b["labels"][b["loss_mask"]] for b in batches])
    assert scored.tolist() == tokens[1:].tolist()
    first = batches[0]
    for row in range(first["input_ids"].shape[0]):  # window r starts at r * stride
        start = row * stride
        assert first["input_ids"][row, :4].tolist() == tokens[start : start + 4].tolist()
        assert (first["labels"][row][~first["loss_mask"][row]] == IGNORE_INDEX).all()


def test_sequential_windows_edge_cases() -> None:
    assert list(sequential_windows(np.arange(1), seq_len=4, batch_size=2)) == []
    assert list(sequential_windows(np.empty(0, dtype=np.uint16), seq_len=4, batch_size=2)) == []
    with pytest.raises(ValueError, match="stride"):
        list(sequential_windows(TOKENS, seq_len=4, batch_size=2, stride=5))


def test_count_windows_matches_what_sequential_windows_yields() -> None:
    from fromzero.data.loader import count_windows

    tokens = np.arange(1000, dtype=np.uint16)
    for seq_len, stride in [(32, None), (32, 8), (100, 100), (999, None), (7, 3)]:
        rows = sum(len(b["input_ids"]) for b in sequential_windows(tokens, seq_len, 4, stride=stride))
        assert count_windows(len(tokens), seq_len, stride) == rows
