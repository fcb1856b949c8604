"""SASRec and BERT4Rec learn a deterministic successor rule (item i is followed by (i + 1) mod N_ITEMS)."""

from __future__ import annotations

import torch

from fromzero.models import create_model
from fromzero.objectives.masked_item import MaskedItem
from fromzero.objectives.next_item import NextItem

N_ITEMS, L = 30, 8  # catalogue size, training sequence length
TINY = {"n_items": N_ITEMS, "n_layer": 1, "dim": 32, "n_head": 2, "max_len": L + 1, "dropout": 0.0}


def successor_runs(gen: torch.Generator, batch: int, length: int) -> torch.Tensor:
    """(batch, length) runs start, start + 1, ... (mod N_ITEMS) from random starts."""
    start = torch.randint(0, N_ITEMS, (batch, 1), generator=gen)
    return (start + torch.arange(length)) % N_ITEMS


def left_padded_histories(gen: torch.Generator, users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Histories of 1..L items, LEFT-padded to L, and the item that should come next."""
    runs = successor_runs(gen, users, L)
    lengths = torch.randint(1, L + 1, (users,), generator=gen)
    hist = runs.masked_fill(torch.arange(L) < (L - lengths)[:, None], N_ITEMS)  # keep the last `length` items
    return hist, (runs[:, -1] + 1) % N_ITEMS


def train(model: torch.nn.Module, objective, make_batch, steps: int = 250) -> None:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        out = objective(model, make_batch(gen))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()


def hit_rate(model: torch.nn.Module) -> float:
    hist, successor = left_padded_histories(torch.Generator().manual_seed(99), 200)
    with torch.no_grad():
        top1 = model.score_all({"history": hist}).argmax(-1)
    return float((top1 == successor).float().mean())


def test_sasrec_learns_the_successor_rule():
    def next_batch(gen):
        runs = successor_runs(gen, 32, L + 1)
        hist, target = runs[:, :-1].clone(), runs[:, 1:].clone()
        cut = torch.randint(0, L, (32,), generator=gen)  # random left padding, as real histories have
        pad = torch.arange(L) < cut[:, None]
        return {"history": hist.masked_fill(pad, N_ITEMS), "target": target.masked_fill(pad, -100)}

    torch.manual_seed(0)
    model = create_model("sasrec", **TINY)
    assert hit_rate(model) < 0.2  # untrained: about chance
    train(model, NextItem(), next_batch)
    assert hit_rate(model) > 0.9


def test_bert4rec_learns_the_successor_rule():
    mask = N_ITEMS + 1

    def masked_batch(gen):
        runs = successor_runs(gen, 32, L + 1)  # max_len: every position is trained
        masked = torch.rand(32, L + 1, generator=gen) < 0.25
        masked[:, -1] |= torch.rand(32, generator=gen) < 0.5  # the last position, as when recommending
        cut = torch.randint(0, L, (32,), generator=gen)
        pad = torch.arange(L + 1) < cut[:, None]
        masked &= ~pad
        return {"history": runs.masked_fill(masked, mask).masked_fill(pad, N_ITEMS),
                "target": runs.masked_fill(~masked, -100)}

    torch.manual_seed(0)
    model = create_model("bert4rec", **TINY)
    assert hit_rate(model) < 0.2
    train(model, MaskedItem(), masked_batch, steps=400)
    assert hit_rate(model) > 0.9
