"""Box IoU, NMS and RoIAlign against naive Python references and hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from fromzero.errors import DataError
from fromzero.nn.boxes import batched_nms, box_area, box_iou, nms, roi_align


def random_boxes(n: int, generator: torch.Generator, size: float = 100.0, max_side: float = 30.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * size
    wh = torch.rand(n, 2, generator=generator) * max_side
    return torch.cat([xy, xy + wh], dim=1)  # (n, 4)


def naive_iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def naive_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """Greedy NMS with Python floats: visit by decreasing score, keep a box unless IoU > threshold."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])  # stable: ties keep index order
    kept: list[int] = []
    for i in order:
        x1, y1, x2, y2 = boxes[i]
        area = (x2 - x1) * (y2 - y1)
        for j in kept:
            a1, b1, a2, b2 = boxes[j]
            iw, ih = min(x2, a2) - max(x1, a1), min(y2, b2) - max(y1, b1)
            if iw <= 0 or ih <= 0:
                continue  # disjoint: IoU 0
            inter = iw * ih
            if inter / (area + (a2 - a1) * (b2 - b1) - inter) > threshold:
                break
        else:
            kept.append(i)
    return kept


def test_box_area_and_iou_hand_cases():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    assert box_area(torch.tensor([[1.0, 2.0, 4.0, 6.0]])).tolist() == [12.0]
    assert box_iou(a, a).item() == 1.0
    assert box_iou(a, torch.tensor([[5.0, 5.0, 6.0, 6.0]])).item() == 0.0
    assert box_iou(a, torch.tensor([[2.0, 0.0, 3.0, 2.0]])).item() == 0.0  # touching edges
    assert box_iou(a, torch.tensor([[1.0, 0.0, 3.0, 2.0]])).item() == pytest.approx(1 / 3)
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert box_iou(point, point).item() == 0.0  # empty union


def test_box_iou_matches_naive_double_loop():
    g = torch.Generator().manual_seed(0)
    a, b = random_boxes(40, g, size=20.0, max_side=15.0), random_boxes(30, g, size=20.0, max_side=15.0)
    got = box_iou(a, b)
    assert got.shape == (40, 30)
    al, bl = a.double().tolist(), b.double().tolist()
    want = torch.tensor([[naive_iou(x, y) for y in bl] for x in al], dtype=torch.float64)
    assert torch.allclose(got.double(), want, atol=1e-6)
    assert (want > 0).sum() > 100  # the case is not trivially disjoint


@pytest.mark.parametrize(("seed", "thresholds"), [(0, (0.1, 0.5)), (1, (0.3, 0.7)), (2, (0.2, 0.6))])
def test_nms_matches_naive_greedy(seed, thresholds):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(2000, g)
    scores = torch.randperm(2000, generator=g).double() / 2000  # distinct
    boxes_list = boxes.double().tolist()
    for threshold in thresholds:
        got = nms(boxes, scores, threshold)
        assert got.dtype == torch.long
        want = naive_nms(boxes_list, scores.tolist(), threshold)
        assert got.tolist() == want, threshold
        assert 10 < len(want) < 2000


def test_nms_ties_lower_index_first_and_strict_threshold():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 11.0, 11.0]])
    scores = torch.tensor([0.5, 0.9, 0.5, 0.5])
    # Box 1 is visited first; 0 and 2 tie with 3 and are visited in index order. IoU(1, 0) = 1/3.
    assert nms(boxes, scores, 0.5).tolist() == [1, 0, 3]  # 2 duplicates 0 (IoU 1 > 0.5)
    assert nms(boxes, scores, 0.3).tolist() == [1, 3]  # 0 and 2 overlap box 1 by 1/3 > 0.3
    assert nms(boxes, scores, 1.0).tolist() == [1, 0, 2, 3]  # IoU 1 is not > 1: strict
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def test_batched_nms_matches_naive_per_label():
    g = torch.Generator().manual_seed(3)
    boxes = random_boxes(1500, g)
    scores = torch.randperm(1500, generator=g).float() / 1500
    labels = torch.randint(0, 4, (1500,), generator=g)
    for threshold in (0.2, 0.5):
        got = batched_nms(boxes, scores, labels, threshold)
        kept = []
        for label in range(4):
            idx = (labels == label).nonzero().squeeze(1).tolist()
            sub = naive_nms([boxes[i].double().tolist() for i in idx], [scores[i].item() for i in idx], threshold)
            kept += [idx[j] for j in sub]
        kept.sort(key=lambda i: -scores[i].item())
        assert got.tolist() == kept


def naive_bilinear(fmap: list[list[float]], y: float, x: float) -> float:
    height, width = len(fmap), len(fmap[0])
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return (
        (1 - ly) * (1 - lx) * fmap[y0][x0]
        + (1 - ly) * lx * fmap[y0][x1]
        + ly * (1 - lx) * fmap[y1][x0]
        + ly * lx * fmap[y1][x1]
    )


def naive_roi_align(features, rois, out_size, scale, sampling_ratio, aligned):
    feats = features.double().tolist()
    out = torch.zeros(len(rois), features.shape[1], out_size, out_size, dtype=torch.float64)
    offset = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois.double().tolist()):
        x1, y1, x2, y2 = (v * scale - offset for v in (x1, y1, x2, y2))
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / out_size, rw / out_size
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(bh)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(bw)
        for c in range(features.shape[1]):
            for ph in range(out_size):
                for pw in range(out_size):
                    total = 0.0
                    for iy in range(gh):
                        y = y1 + ph * bh + (iy + 0.5) * bh / gh
                        for ix in range(gw):
                            x = x1 + pw * bw + (ix + 0.5) * bw / gw
                            total += naive_bilinear(feats[int(b)][c], y, x)
                    out[k, c, ph, pw] = total / max(gh * gw, 1)
    return out


def random_rois(n: int, batch: int, extent: float, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * (extent + 8) - 6  # some start outside the image
    wh = torch.rand(n, 2, generator=g) * extent
    wh[: n // 6] *= 0.05  # tiny regions
    index = torch.randint(0, batch, (n, 1), generator=g).float()
    return torch.cat([index, xy, xy + wh], dim=1)  # (n, 5)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_roi_align_matches_naive_bilinear(aligned, sampling_ratio, scale):
    g = torch.Generator().manual_seed(4)
    features = torch.randn(2, 3, 9, 9, generator=g)
    rois = random_rois(30, 2, 9 / scale, g)
    got = roi_align(features, rois, 3, spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=aligned)
    assert got.shape == (30, 3, 3, 3)
    want = naive_roi_align(features, rois, 3, scale, sampling_ratio, aligned)
    assert torch.allclose(got.double(), want, atol=1e-5), (got.double() - want).abs().max()


def test_roi_align_rectangular_output_and_empty_rois():
    features = torch.arange(2 * 1 * 6 * 8, dtype=torch.float32).view(2, 1, 6, 8)
    rois = torch.tensor([[1.0, 0.0, 0.0, 8.0, 6.0]])
    got = roi_align(features, rois, (2, 4), sampling_ratio=1, aligned=False)
    assert got.shape == (1, 1, 2, 4)
    # aligned=False, one sample per bin at its centre: y in {1.5, 4.5}, x in {1, 3, 5, 7}.
    want = torch.tensor([[1.5 * 8 + x for x in (1, 3, 5, 7)], [4.5 * 8 + x for x in (1, 3, 5, 7)]]) + 48
    assert torch.allclose(got[0, 0], want)
    assert roi_align(features, torch.zeros(0, 5), 2).shape == (0, 1, 2, 2)


def test_roi_align_gradcheck():
    g = torch.Generator().manual_seed(5)
    features = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(4, 1, 5.0, g).double()
    for sampling_ratio in (2, -1):
        assert torch.autograd.gradcheck(
            lambda f, s=sampling_ratio: roi_align(f, rois, 2, sampling_ratio=s, aligned=True), (features,)
        )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: box_iou(torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 1.0, 1.0]]), torch.zeros(1, 4)), "row 1"),
        (lambda: box_area(torch.tensor([[0.0, 3.0, 1.0, 1.0]])), "row 0"),
        (lambda: box_area(torch.zeros(3, 5)), "(N, 4)"),
        (lambda: box_area(torch.tensor([[0.0, 0.0, float("nan"), 1.0]])), "non-finite"),
        (lambda: nms(torch.zeros(3, 4), torch.zeros(2), 0.5), "scores"),
        (lambda: batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2), 0.5), "labels"),
        (lambda: roi_align(torch.zeros(2, 3, 4), torch.zeros(1, 5), 2), "features"),
        (lambda: roi_align(torch.zeros(2, 1, 4, 4), torch.zeros(1, 4), 2), "rois"),
        (lambda: roi_align(torch.zeros(2, 1, 4, 4), torch.tensor([[0.0, 0, 0, 1, 1], [2.0, 0, 0, 1, 1]]), 2), "row 1"),
        (lambda: roi_align(torch.zeros(2, 1, 4, 4), torch.tensor([[0.0, 3, 0, 1, 1]]), 2), "x2 < x1"),
    ],
)
def test_bad_inputs_raise_data_error(call, message):
    with pytest.raises(DataError) as excinfo:
        call()
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
