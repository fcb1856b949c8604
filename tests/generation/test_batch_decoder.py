"""Continuous batching in BatchDecoder: rows joining mid-run, leaving (their slot reused), sliding windows per
row, a bounded number of slots; each row's tokens equal those of the row decoded alone (naive reference)."""

from __future__ import annotations

import pytest
import torch

from fromzero.generation import BatchDecoder, SamplingConfig
from fromzero.models import create_model
from fromzero.nn import KVCache

GREEDY = SamplingConfig(max_new_tokens=1000, greedy=True)  # the decoder itself never stops a row



@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("gpt-char-tiny", vocab_size=32, init_std=0.5, block_size=16).eval()


def naive(model: torch.nn.Module, prompt: list[int], n: int, block: int = 16) -> list[int]:
    """Plain forward over the window, argmax; a full window keeps its last block // 2 tokens."""
    ids, start = list(prompt[-(block - 1):]), 0
    with torch.no_grad():
        for _ in range(n):
            if len(ids) - start >= block:
                start = len(ids) - block // 2
            ids.append(int(model(torch.tensor([ids[start:]]))[0, -1].argmax()))
    return ids[-n:]


def test_rows_join_and_leave_mid_run_and_decode_as_alone(model: torch.nn.Module) -> None:
    prompts = {"a": [1, 2, 3], "b": [5, 9, 2, 7, 7, 1], "c": [4], "d": [8, 8, 3, 2, 6, 1, 0, 5, 9, 3, 1]}
    with torch.inference_mode():
        decoder = BatchDecoder(model, max_batch=3)
        rows = {"a": decoder.add(prompts["a"], GREEDY), "b": decoder.add(prompts["b"], GREEDY)}
        for step in range(30):  # windows fill (block 16) and slide, per row, at different steps
            if step == 4:
                rows["c"] = decoder.add(prompts["c"], GREEDY)
            if step == 9:
                decoder.remove(rows["a"])  # a middle slot frees: the last row moves into it
                rows["d"] = decoder.add(prompts["d"], GREEDY)
            decoder.step()
            assert len(decoder.live) <= 3
    for name, row in rows.items():
        assert row.generated == naive(model, prompts[name], len(row.generated)), name
    assert [len(r.generated) for r in rows.values()] == [9, 30, 26, 21]


def test_waiting_rows_take_slots_in_order_of_arrival(model: torch.nn.Module) -> None:
    with torch.inference_mode():
        decoder = BatchDecoder(model, max_batch=2)
        rows = [decoder.add([i + 1, i + 2], GREEDY) for i in range(4)]
        decoder.step()
        assert [r.generated != [] for r in rows] == [True, True, False, False] and len(decoder) == 4
        decoder.remove(rows[0])
        decoder.step()
        assert [len(r.generated) for r in rows] == [1, 2, 1, 0]
    assert rows[2].generated == naive(model, [3, 4], 1)
    with pytest.raises(ValueError, match="empty"):
        decoder.add([], GREEDY)


def test_kv_cache_slot_writes_and_row_copies() -> None:
    cache = KVCache(n_layer=1, batch=3, n_kv_head=2, head_dim=4, max_len=8)
    k, v = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    keys, values = cache.write(0, k, v, torch.tensor([5, 0, 2]), span=6)
    assert keys.shape == (3, 2, 6, 4)
    for r, p in enumerate([5, 0, 2]):  # a hand-written scatter: row r at its own position
        assert torch.equal(cache.keys[0][r, :, p], k[r]) and torch.equal(cache.values[0][r, :, p], v[r])
    view = cache.rows(1, 3)
    view.update(0, torch.ones(2, 2, 3, 4), torch.ones(2, 2, 3, 4))
    assert torch.equal(cache.keys[0][1:, :, :3], torch.ones(2, 2, 3, 4)) and view.batch == 2
    cache.copy_row(2, 0, length=3)
    assert torch.equal(cache.keys[0][0, :, :3], cache.keys[0][2, :, :3])
    assert torch.equal(cache.keys[0][0, :, 5], k[0])  # past the copied length: untouched
