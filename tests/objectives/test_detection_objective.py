"""The detection objective: it passes the batch to model.loss, reports every component, and rejects
batches that break the detection contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fromzero.models.yolo  # noqa: F401  (registers detector-yolo)
from fromzero.errors import DataError
from fromzero.models.registry import create_model
from fromzero.objectives.detection import Detection


class RecordingDetector(nn.Module):
    """A 'detector' whose loss is a known function of a parameter; it records what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.seen: tuple[torch.Tensor, ...] = ()

    def loss(self, pixels: torch.Tensor, boxes: torch.Tensor, box_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen = (pixels, boxes, box_labels)
        a, b = self.scale * 3.0, self.scale**2
        return {"loss": a + b, "loss_obj": a, "loss_box": b}


def batch(b: int = 3, m: int = 2) -> dict[str, torch.Tensor]:
    boxes = torch.zeros(b, m, 4)
    boxes[:, 0] = torch.tensor([4.0, 4.0, 20.0, 18.0])
    labels = torch.full((b, m), -1)
    labels[:, 0] = torch.arange(b) % 10
    return {"pixels": torch.randn(b, 1, 32, 32), "boxes": boxes, "box_labels": labels}


def test_loss_and_metrics_come_from_model_loss() -> None:
    model, data = RecordingDetector(), batch()
    out = Detection()(model, data)
    assert all(x is y for x, y in zip(model.seen, (data["pixels"], data["boxes"], data["box_labels"]), strict=True))
    assert out.loss.item() == pytest.approx(6.0 + 4.0)
    assert out.loss.requires_grad
    assert set(out.metrics) == {"loss", "loss_obj", "loss_box"}
    assert out.metrics["loss_obj"].item() == pytest.approx(6.0) and out.metrics["loss_box"].item() == pytest.approx(4.0)
    assert not any(v.requires_grad for v in out.metrics.values())
    assert out.weight == 3
    out.loss.backward()
    assert model.scale.grad.item() == pytest.approx(3.0 + 2 * 2.0)  # d(3s + s^2)/ds at s = 2


def test_real_detector_loss_matches_its_components() -> None:
    torch.manual_seed(0)
    model, data = create_model("yolo-tiny", num_classes=10), batch(2)
    model.eval()  # BatchNorm on running statistics: the two calls see identical activations
    out = Detection()(model, data)
    direct = model.loss(data["pixels"], data["boxes"], data["box_labels"])
    assert out.loss.item() == pytest.approx(direct["loss"].item())
    for key in ("loss_obj", "loss_cls", "loss_box"):
        assert out.metrics[key].item() == pytest.approx(direct[key].item())
    assert out.loss.item() == pytest.approx(direct["loss_obj"].item() + direct["loss_cls"].item()
                                            + 5.0 * direct["loss_box"].item(), rel=1e-5)
    assert out.weight == 2


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("boxes"), "no 'boxes'"),
    (lambda d: d.__setitem__("boxes", torch.zeros(3, 2, 5)), r"boxes must be \(B, M, 4\)"),
    (lambda d: d.__setitem__("box_labels", torch.zeros(3, 3, dtype=torch.long)), "box_labels must be"),
    (lambda d: d.__setitem__("box_labels", torch.zeros(3, 2)), "box_labels must be integer"),
    (lambda d: d["box_labels"].__setitem__((1, 0), 10), r"box_labels\[1, 0\] = 10 is not a class in \[0, 10\)"),
    (lambda d: d["box_labels"].__setitem__((2, 1), -2), r"box_labels\[2, 1\] = -2"),
])
def test_bad_batches_raise_one_line_data_errors(change, message: str) -> None:
    model, data = create_model("yolo-tiny"), batch()
    change(data)
    with pytest.raises(DataError, match=message) as info:
        Detection()(model, data)
    assert "\n" not in str(info.value)
