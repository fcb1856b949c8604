"""next_item / masked_item: full-softmax cross-entropy against a naive per-position loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fromzero.models import create_model
from fromzero.objectives.masked_item import MaskedItem
from fromzero.objectives.next_item import NextItem

N_ITEMS = 7


class FixedLogits(nn.Module):
    """A stand-in model whose "hidden state" is a given (B, L, N_ITEMS) logit tensor; item_logits is the identity."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.logits

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


def naive_loss(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over non-ignored (b, t) of -log softmax(logits[b, t])[target], one position at a time."""
    losses = []
    for b in range(target.shape[0]):
        for t in range(target.shape[1]):
            y = int(target[b, t])
            if y == -100:
                continue
            row = [float(v) for v in logits[b, t]]
            top = max(row)
            log_z = top + math.log(sum(math.exp(v - top) for v in row))
            losses.append(log_z - row[y])
    return sum(losses) / len(losses)


TARGET = torch.tensor([[-100, 3, 0, 6], [-100, -100, 2, -100]])


@pytest.mark.parametrize("objective", [NextItem(), MaskedItem()])
def test_loss_equals_naive_loop_and_accuracy_counts_top1(objective):
    torch.manual_seed(0)
    logits = torch.randn(2, 4, N_ITEMS)
    logits[0, 1, 3] = 9.0  # two hits by construction: (0, 1) and (1, 2)
    logits[1, 2, 2] = 9.0
    logits[0, 2, 0] = -9.0  # and two misses
    logits[0, 3, 6] = -9.0
    batch = {"history": torch.zeros(2, 4, dtype=torch.long), "target": TARGET}
    assert "accuracy" not in objective(FixedLogits(logits), batch).metrics  # training steps skip the argmax
    out = objective(FixedLogits(logits).eval(), batch)
    assert abs(float(out.loss.detach()) - naive_loss(logits, TARGET)) < 1e-5
    assert out.weight == 4
    assert float(out.metrics["accuracy"]) == pytest.approx(2 / 4)
    assert float(out.metrics["loss"]) == pytest.approx(float(out.loss.detach()))


def test_ignored_positions_contribute_nothing():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, N_ITEMS)
    model = FixedLogits(logits)
    batch = {"history": torch.zeros(2, 4, dtype=torch.long), "target": TARGET}
    out = NextItem()(model, batch)
    out.loss.backward()
    ignored = TARGET == -100
    assert torch.all(model.logits.grad[ignored] == 0)  # no gradient reaches an ignored position
    assert torch.all(model.logits.grad[~ignored].abs().sum(-1) > 0)
    wild = logits.clone()
    wild[ignored] = 100 * torch.randn(int(ignored.sum()), N_ITEMS)  # anything at ignored positions
    again = NextItem()(FixedLogits(wild), batch).metrics["loss"]
    assert float(again) == pytest.approx(float(out.metrics["loss"]), abs=1e-6)


def test_nothing_scored_gives_zero_loss_that_backpropagates():
    model = FixedLogits(torch.randn(1, 3, N_ITEMS))
    out = MaskedItem()(model, {"history": torch.zeros(1, 3, dtype=torch.long),
                               "target": torch.full((1, 3), -100)})
    assert float(out.loss.detach()) == 0.0 and out.weight == 0
    out.loss.backward()
    assert torch.all(model.logits.grad == 0)


@pytest.mark.parametrize("family", ["sasrec", "bert4rec"])
def test_with_a_real_model_the_loss_is_over_all_catalogue_items(family):
    torch.manual_seed(0)
    model = create_model(family, n_items=N_ITEMS, n_layer=1, dim=8, n_head=2, max_len=6, dropout=0.0).eval()
    history = torch.tensor([[N_ITEMS, N_ITEMS, 1, 2, 3, 4], [5, 6, 0, N_ITEMS + 1, 2, 1]])
    target = torch.tensor([[-100, -100, 2, 3, 4, 5], [-100, -100, -100, 1, -100, 2]])
    with torch.no_grad():
        full = model.item_logits(model(history))  # (B, L, N_ITEMS)
        out = (NextItem() if family == "sasrec" else MaskedItem())(model, {"history": history, "target": target})
    assert full.shape == (2, 6, N_ITEMS)
    assert abs(float(out.loss) - naive_loss(full, target)) < 1e-5
    assert out.weight == 6
