"""ctc-speech: output lengths follow the conv formula, padding never changes an utterance's outputs, and the
model trains through CTCObjective (the gradient reaches every parameter; the loss falls on a toy task)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fromzero.models import create_model
from fromzero.models.ctc_speech import output_lengths
from fromzero.nn.ctc import collapse
from fromzero.objectives.ctc import CTCObjective

SMALL = {"n_mels": 16, "vocab_size": 5, "conv_channels": 4, "d_model": 16, "n_layer": 2, "n_head": 2,
         "dropout": 0.0, "max_frames": 400}


def _naive_length(n: int) -> int:
    """Frames after two 3-wide, stride-2, padding-1 convs, by sliding the window by hand."""
    for _ in range(2):
        n = len([start for start in range(-1, n + 1 - 2, 2)])  # window [start, start + 2] within [-1, n]
    return n


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 101, 399])
def test_output_lengths_match_the_convs(n: int) -> None:
    torch.manual_seed(0)
    model = create_model("ctc-speech", **SMALL).eval()
    logits, lengths = model(torch.randn(1, n, 16), torch.tensor([n]))
    assert int(lengths[0]) == logits.shape[1] == _naive_length(n) == int(output_lengths(torch.tensor(n)))


def test_padding_does_not_change_an_utterance() -> None:
    torch.manual_seed(0)
    model = create_model("ctc-speech", **SMALL).eval()
    short, long = torch.randn(37, 16), torch.randn(90, 16)
    batch = torch.zeros(2, 90, 16)
    batch[0, :37], batch[1] = short, long
    batch[0, 37:] = 5.0  # whatever lies past a length is ignored
    logits, lengths = model(batch, torch.tensor([37, 90]))
    alone, alone_len = model(short[None], torch.tensor([37]))
    assert int(lengths[0]) == int(alone_len[0]) == 10
    torch.testing.assert_close(logits[0, :10], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[1], model(long[None], torch.tensor([90]))[0][0], atol=1e-5, rtol=1e-5)


def test_trains_through_the_ctc_objective() -> None:
    """Two utterances whose frames encode their labels: 200 Adam steps bring the CTC loss far down."""
    torch.manual_seed(0)
    model = create_model("ctc-speech", **SMALL)
    features = torch.zeros(2, 48, 16)
    features[0, :, 1] = 3.0  # utterance 0 "1 2", utterance 1 "3 4": each label lights its own mel bins
    features[0, 24:, 2] = 3.0
    features[1, :, 3] = 3.0
    features[1, 24:, 4] = 3.0
    batch = {"features": features, "feature_lengths": torch.tensor([48, 48]),
             "labels": torch.tensor([[1, 2], [3, 4]]), "label_lengths": torch.tensor([2, 2])}
    objective = CTCObjective()
    first = objective(model, batch)
    first.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert float(first.metrics["infeasible"]) == 0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        objective(model, batch).loss.backward()
        optimizer.step()
    final = float(objective(model, batch).loss.detach())
    assert final < 0.2 * float(first.loss.detach())
    logits, lengths = model.eval()(features, batch["feature_lengths"])
    best = F.log_softmax(logits, -1).argmax(-1)  # (B, T')
    assert [collapse(row.tolist()) for row in best] == [[1, 2], [3, 4]]


def test_bad_shapes_name_the_fix() -> None:
    model = create_model("ctc-speech", **SMALL)
    with pytest.raises(ValueError, match=r"\(B, T, 16\)"):
        model(torch.zeros(1, 10, 8), torch.tensor([10]))
    with pytest.raises(ValueError, match="max_frames"):
        model(torch.zeros(1, 401, 16), torch.tensor([401]))
