"""Box encodings and detection selection against hand-computed values and naive references."""

from __future__ import annotations

import math

import pytest
import torch

from fromzero.nn.box_coder import (
    DELTA_CLAMP,
    clip_boxes,
    decode_deltas,
    decode_ltrb,
    encode_deltas,
    encode_ltrb,
    select_detections,
)


def test_deltas_by_hand() -> None:
    # reference: centre (5, 10), size 10 x 20
    reference = torch.tensor([[0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 10.0, 20.0]])
    # target 1: same size, centre (7, 14); target 2: centre (10, 5), size 20 x 10
    target = torch.tensor([[2.0, 4.0, 12.0, 24.0], [0.0, 0.0, 20.0, 10.0]])
    expected = torch.tensor([[0.2, 0.2, 0.0, 0.0], [0.5, -0.25, math.log(2.0), math.log(0.5)]])
    torch.testing.assert_close(encode_deltas(reference, target), expected)
    weighted = encode_deltas(reference, target, (10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(weighted, expected * torch.tensor([10.0, 10.0, 5.0, 5.0]))
    torch.testing.assert_close(decode_deltas(reference, expected), target)
    torch.testing.assert_close(decode_deltas(reference, weighted, (10.0, 10.0, 5.0, 5.0)), target)


def test_deltas_round_trip_on_random_boxes() -> None:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 50
    ref = torch.cat([xy, xy + 1 + torch.rand(200, 2, generator=g) * 30], 1)
    xy = torch.rand(200, 2, generator=g) * 50
    target = torch.cat([xy, xy + 1 + torch.rand(200, 2, generator=g) * 30], 1)
    for weights in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
        deltas = encode_deltas(ref, target, weights)
        torch.testing.assert_close(decode_deltas(ref, deltas, weights), target, atol=1e-4, rtol=1e-5)


def test_decode_broadcasts_class_specific_deltas_and_clamps() -> None:
    ref = torch.tensor([[0.0, 0.0, 16.0, 16.0]])  # (1, 4): centre (8, 8), size 16
    deltas = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.25, -0.5, 100.0, 0.0]]])  # (1, 2, 4): two classes
    out = decode_deltas(ref[:, None, :], deltas)  # (1, 2, 4)
    assert out.shape == (1, 2, 4)
    torch.testing.assert_close(out[0, 0], ref[0])
    w = 16 * math.exp(DELTA_CLAMP)  # dw = 100 is clamped: 1000 pixels wide at most
    assert w == pytest.approx(1000.0)
    torch.testing.assert_close(out[0, 1], torch.tensor([12 - w / 2, -8.0, 12 + w / 2, 8.0]))


def test_ltrb_by_hand() -> None:
    points = torch.tensor([[10.0, 12.0], [6.0, 6.0]])
    boxes = torch.tensor([[4.0, 6.0, 18.0, 30.0], [0.0, 2.0, 8.0, 10.0]])
    dist = encode_ltrb(points, boxes, 2.0)
    torch.testing.assert_close(dist, torch.tensor([[3.0, 3.0, 4.0, 9.0], [3.0, 2.0, 1.0, 2.0]]))
    per_point = torch.tensor([2.0, 4.0])
    dist2 = encode_ltrb(points, boxes, per_point)
    torch.testing.assert_close(dist2[1], torch.tensor([1.5, 1.0, 0.5, 1.0]))
    torch.testing.assert_close(decode_ltrb(points, dist, 2.0), boxes)
    torch.testing.assert_close(decode_ltrb(points, dist2, per_point), boxes)


def test_clip_boxes_by_hand() -> None:
    boxes = torch.tensor([[-3.0, 2.0, 70.0, 50.0], [10.0, -1.0, 20.0, 90.0]])
    torch.testing.assert_close(clip_boxes(boxes, 48, 64),
                               torch.tensor([[0.0, 2.0, 64.0, 48.0], [10.0, 0.0, 20.0, 48.0]]))


def naive_select(boxes: list, scores: list[list[float]], thr: float, iou_thr: float, cap: int) -> list:
    """(score, label, box) triples: threshold, then per-class greedy NMS, sorted by score, capped."""
    def iou(a: list[float], b: list[float]) -> float:
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
        return iw * ih / union

    cands = [(s, k, boxes[i] if not isinstance(boxes[i][0], list) else boxes[i][k])
             for i, row in enumerate(scores) for k, s in enumerate(row) if s > thr]
    cands.sort(key=lambda t: -t[0])
    kept: list = []
    for s, k, b in cands:
        if all(k2 != k or iou(b, b2) <= iou_thr for _, k2, b2 in kept):
            kept.append((s, k, b))
    return kept[:cap]


def test_select_detections_matches_naive_reference() -> None:
    boxes = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [30.0, 30.0, 40.0, 40.0], [0.0, 0.0, 10.0, 9.0]]
    scores = [[0.9, 0.3], [0.8, 0.85], [0.02, 0.6], [0.7, 0.1]]
    out = select_detections(torch.tensor(boxes), torch.tensor(scores), 0.05, 0.5, 100)
    expected = naive_select(boxes, scores, 0.05, 0.5, 100)
    # by hand: class 0 keeps box 0 (0.9) and drops boxes 1 and 3 (IoU 0.68, 0.9); class 1 keeps
    # box 1 (0.85), box 2 (0.6), drops box 0 (0.3, IoU 0.68 with box 1), box 3 (0.1) likewise
    assert [(round(s, 2), k) for s, k, _ in expected] == [(0.9, 0), (0.85, 1), (0.6, 1)]
    assert out["labels"].tolist() == [k for _, k, _ in expected]
    torch.testing.assert_close(out["scores"], torch.tensor([s for s, _, _ in expected]))
    torch.testing.assert_close(out["boxes"], torch.tensor([b for _, _, b in expected]))
    assert out["boxes"].dtype == torch.float32 and out["labels"].dtype == torch.int64
    capped = select_detections(torch.tensor(boxes), torch.tensor(scores), 0.05, 0.5, 2)
    assert capped["labels"].tolist() == [0, 1]


def test_select_detections_class_specific_boxes_and_random_cases() -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        xy = torch.rand(40, 3, 2, generator=g) * 40
        boxes = torch.cat([xy, xy + 2 + torch.rand(40, 3, 2, generator=g) * 20], -1)  # (40, 3, 4)
        scores = torch.rand(40, 3, generator=g)
        out = select_detections(boxes, scores, 0.3, 0.4, 25)
        expected = naive_select(boxes.tolist(), scores.tolist(), 0.3, 0.4, 25)
        assert out["labels"].tolist() == [k for _, k, _ in expected]
        torch.testing.assert_close(out["boxes"], torch.tensor([b for _, _, b in expected]))


def test_select_detections_empty_and_degenerate() -> None:
    out = select_detections(torch.zeros(0, 4), torch.zeros(0, 3), 0.05, 0.5, 10)
    assert out["boxes"].shape == (0, 4) and out["scores"].shape == (0,) and out["labels"].shape == (0,)
    # a box clipped to zero width is dropped however high its score
    out = select_detections(torch.tensor([[64.0, 3.0, 64.0, 9.0], [1.0, 1.0, 5.0, 5.0]]),
                            torch.tensor([[0.99], [0.5]]), 0.05, 0.5, 10)
    assert out["scores"].tolist() == [0.5]
