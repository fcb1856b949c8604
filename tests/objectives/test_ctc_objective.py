"""CTCObjective equals a naive forward-algorithm CTC loss (per label, then per utterance), with a model that keeps
the frame rate and one that halves it and returns its output lengths; an utterance too short for its labels is
counted as infeasible and zeroed, not infinite."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.objectives.ctc import CTCObjective, frames_needed


def _naive_nll(log_probs: torch.Tensor, labels: list[int]) -> float:
    """-log p(labels | x) by the forward algorithm, in plain Python floats (blank = 0)."""
    ext = [0]
    for c in labels:
        ext += [c, 0]
    lp = log_probs.double().tolist()
    alpha = [-math.inf] * len(ext)
    alpha[0], alpha[1] = lp[0][0], lp[0][ext[1]]
    for t in range(1, len(lp)):
        prev = alpha
        alpha = []
        for s, c in enumerate(ext):
            terms = [prev[s]] + ([prev[s - 1]] if s >= 1 else [])
            if s >= 2 and c != 0 and c != ext[s - 2]:
                terms.append(prev[s - 2])
            high = max(terms)
            alpha.append(-math.inf if high == -math.inf else high + math.log(sum(math.exp(x - high) for x in terms))
                         + lp[t][c])
    ends = [alpha[-1], alpha[-2]]
    high = max(ends)
    return math.inf if high == -math.inf else -(high + math.log(sum(math.exp(x - high) for x in ends)))


class FrameModel(nn.Module):
    """A linear map per frame; with ``stride`` 2 it averages frame pairs and returns the output lengths."""

    def __init__(self, features: int, vocab: int, stride: int = 1) -> None:
        super().__init__()
        self.proj = nn.Linear(features, vocab)
        self.stride = stride

    def forward(self, features: torch.Tensor, lengths: torch.Tensor):
        if self.stride == 1:
            return self.proj(features)  # (B, T, V)
        b, t, f = features.shape
        pooled = features[:, : t - t % 2].reshape(b, t // 2, 2, f).mean(2)  # (B, T/2, F)
        return self.proj(pooled), lengths // 2


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"features": torch.randn(3, 10, 4, generator=g), "feature_lengths": torch.tensor([10, 8, 6]),
            "labels": torch.tensor([[1, 2, 2], [3, 1, 0], [2, 2, 2]]), "label_lengths": torch.tensor([3, 2, 3])}


def _expected(model: nn.Module, batch: dict[str, torch.Tensor], stride: int) -> tuple[float, int]:
    features = batch["features"]
    if stride == 2:
        features = features.reshape(3, 5, 2, 4).mean(2)
    log_probs = F.log_softmax(model.proj(features), dim=-1)
    losses, infeasible = [], 0
    for b in range(3):
        n = int(batch["feature_lengths"][b]) // stride
        nll = _naive_nll(log_probs[b, :n], batch["labels"][b, : batch["label_lengths"][b]].tolist())
        infeasible += math.isinf(nll)
        losses.append(0.0 if math.isinf(nll) else nll / int(batch["label_lengths"][b]))
    return sum(losses) / 3, infeasible


def test_loss_equals_the_naive_forward_algorithm() -> None:
    torch.manual_seed(0)
    batch = _batch()
    for stride in (1, 2):
        model = FrameModel(4, 4, stride)
        out = CTCObjective()(model, batch)
        expected, infeasible = _expected(model, batch, stride)
        assert math.isclose(float(out.metrics["loss"]), expected, rel_tol=1e-5)
        assert float(out.metrics["infeasible"]) == infeasible and out.weight == 3
        out.loss.backward()
        assert torch.isfinite(model.proj.weight.grad).all() and model.proj.weight.grad.abs().sum() > 0
    # stride 2: row 2 has 3 frames for "2 2 2", which needs 5 -> infeasible, zeroed
    assert _expected(FrameModel(4, 4, 2), batch, 2)[1] == 1
    assert frames_needed(batch["labels"], batch["label_lengths"]).tolist() == [4, 2, 5]


def test_without_zero_infinity_an_infeasible_row_is_infinite() -> None:
    out = CTCObjective(zero_infinity=False)(FrameModel(4, 4, 2), _batch())
    assert math.isinf(float(out.metrics["loss"])) and float(out.metrics["infeasible"]) == 1
