"""Cross-check of nn/boxes.py against torchvision.ops where torchvision loads (its compiled ops need the CUDA
build of torch, so this skips, saying why, in the CPU-torch environment; run it in the benchmark environment:
`pip install torch==2.14.1 torchvision==0.29.1 pytest` then `python -m pytest tests/nn/test_boxes_torchvision.py`)."""

from __future__ import annotations

import pytest
import torch

from fromzero.nn.boxes import batched_nms, box_iou, nms, roi_align


def _ops():
    try:
        from torchvision import ops

        ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)  # the compiled op really loads
    except Exception as err:  # ImportError, or a RuntimeError from a CPU/CUDA build mismatch
        pytest.skip(f"torchvision.ops unavailable here ({type(err).__name__}: {str(err)[:80]}); the naive "
                    "references in tests/nn/test_boxes.py check the same functions")
    return ops


def _boxes(n: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 30 + 0.5
    return torch.cat([xy, xy + wh], dim=1)


def test_iou_and_nms_equal_torchvision_on_thousands_of_boxes() -> None:
    ops, g = _ops(), torch.Generator().manual_seed(0)
    for trial in range(5):
        boxes, scores = _boxes(2000, g), torch.rand(2000, generator=g)
        labels = torch.randint(0, 7, (2000,), generator=g)
        torch.testing.assert_close(box_iou(boxes, boxes), ops.box_iou(boxes, boxes))
        for threshold in (0.3, 0.5, 0.7):
            assert torch.equal(nms(boxes, scores, threshold), ops.nms(boxes, scores, threshold)), (trial, threshold)
            assert torch.equal(batched_nms(boxes, scores, labels, threshold),
                               ops.batched_nms(boxes, scores, labels, threshold)), (trial, threshold)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_equals_torchvision(aligned: bool, sampling_ratio: int) -> None:
    ops, g = _ops(), torch.Generator().manual_seed(1)
    features = torch.randn(2, 3, 16, 20, generator=g)
    rois = torch.cat([torch.randint(0, 2, (50, 1), generator=g).float(), _boxes(50, g) / 4], dim=1)
    ours = roi_align(features, rois, (5, 4), spatial_scale=0.25, sampling_ratio=sampling_ratio, aligned=aligned)
    theirs = ops.roi_align(features, rois, (5, 4), spatial_scale=0.25, sampling_ratio=sampling_ratio, aligned=aligned)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
