"""The two detector families: hand-built target assignment and GIoU, empty images, the detect() contract,
determinism, and overfitting one synthetic image until detect() finds its rectangles."""

from __future__ import annotations

import pytest
import torch

import fromzero.models.rcnn  # noqa: F401  (registers detector-rcnn)
import fromzero.models.yolo  # noqa: F401  (registers detector-yolo)
from fromzero.errors import ConfigError
from fromzero.models.rcnn import FasterRCNN, label_anchors, make_anchors, sample_balanced
from fromzero.models.registry import create_model
from fromzero.models.yolo import YoloDetector, assign_cells, generalized_iou
from fromzero.nn.boxes import box_iou

GT = torch.tensor([[8.0, 10.0, 20.0, 24.0], [34.0, 6.0, 58.0, 30.0], [12.0, 40.0, 36.0, 56.0]])
GT_LABELS = torch.tensor([2, 7, 4])


def scene() -> torch.Tensor:
    """One 64x64 grayscale image: three bright rectangles (the boxes GT) of different brightness."""
    img = torch.full((1, 1, 64, 64), -0.5)
    for (x1, y1, x2, y2), v in zip(GT.long().tolist(), (2.0, 1.5, 2.5), strict=True):
        img[0, 0, y1:y2, x1:x2] = v
    return img


def test_generalized_iou_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 3.0, 3.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [1.0, 1.0, 3.0, 3.0]])
    # overlap 1, union 7, hull 9; disjoint: union 2, hull 3; identical: 1
    torch.testing.assert_close(generalized_iou(a, b), torch.tensor([1 / 7 - 2 / 9, -1 / 3, 1.0]))


def yolo_cells(h: int = 64, w: int = 64) -> dict[str, torch.Tensor]:
    model = create_model("yolo-tiny").eval()
    with torch.no_grad():
        return model(torch.zeros(1, 1, h, w))


def positives(match: torch.Tensor, box: int, level_offset: int, width: int) -> set[tuple[int, int]]:
    cells = (match == box).nonzero().squeeze(1).tolist()
    return {((c - level_offset) // width, (c - level_offset) % width) for c in cells}


def test_cell_layout_of_yolo_tiny() -> None:
    out = yolo_cells()
    assert out["points"].shape == (16 * 16 + 8 * 8, 2)
    torch.testing.assert_close(out["points"][17], torch.tensor([6.0, 6.0]))  # level 0, row 1, col 1
    torch.testing.assert_close(out["points"][256 + 9], torch.tensor([12.0, 12.0]))  # level 1, row 1, col 1
    assert out["strides"][:256].eq(4).all() and out["strides"][256:].eq(8).all()
    assert out["obj"].shape == (1, 320) and out["cls"].shape == (1, 320, 10) and out["ltrb"].shape == (1, 320, 4)


def test_assignment_on_hand_built_boxes() -> None:
    out = yolo_cells()
    boxes = torch.tensor([[
        [8.0, 8.0, 24.0, 20.0],  # A: 16x12 -> level 0 (longest side <= 16); centre (16, 14), radius 6
        [10.0, 6.0, 26.0, 22.0],  # C: 16x16, level 0, overlaps A; larger, so loses the shared cells
        [32.0, 32.0, 56.0, 56.0],  # D: 24x24 -> level 1 (stride 8); centre (44, 44), radius 12
        [50.0, 2.0, 52.0, 4.0],  # E: 2x2, no cell centre strictly inside: only its centre cell
        [0.0, 0.0, 0.0, 0.0],  # padding
    ], [[0.0] * 4] * 5])
    labels = torch.tensor([[1, 2, 3, 4, -1], [-1] * 5])
    match = assign_cells(out["points"], out["strides"], out["levels"], boxes, labels, (16.0,), 1.5)
    assert match.shape == (2, 320)
    # A: centre region x in (10, 22), y in (8, 20) -> centres x 14, 18 (cols 3, 4), y 10, 14, 18 (rows 2-4)
    assert positives(match[0, :256], 0, 0, 16) == {(2, 3), (2, 4), (3, 3), (3, 4), (4, 3), (4, 4)}
    # C: x in (12, 24) -> cols 3, 4, 5; rows 2-4; its centre cell (3, 4) and cols 3-4 belong to smaller A
    assert positives(match[0, :256], 1, 0, 16) == {(2, 5), (3, 5), (4, 5)}
    # D: x, y in (32, 56) -> centres 36, 44, 52 -> rows and cols 4, 5, 6 of the 8x8 level
    assert positives(match[0, 256:], 2, 0, 8) == {(r, c) for r in (4, 5, 6) for c in (4, 5, 6)}
    assert not (match[0, :256] == 2).any()  # and nothing on the level of the wrong size
    assert positives(match[0, :256], 3, 0, 16) == {(0, 12)}  # centre (51, 3) -> cell (0, 12)
    assert not (match[0] == 4).any()  # the padding row is never assigned
    assert (match[1] == -1).all()  # an image with no boxes: all background


@pytest.mark.parametrize("name", ["yolo-tiny", "rcnn-tiny"])
def test_loss_on_images_without_boxes(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    pixels = torch.randn(2, 1, 64, 64)
    boxes = torch.zeros(2, 1, 4)
    labels = torch.full((2, 1), -1)
    out = model.loss(pixels, boxes, labels)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    for key, value in out.items():
        assert value.dim() == 0 and torch.isfinite(value), key
    box_terms = ["loss_box", "loss_cls"] if name == "yolo-tiny" else ["rpn_box", "roi_box"]
    for key in box_terms:
        assert out[key].item() == 0.0  # no positives: only the background terms remain
    out["loss"].backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    mixed = model.loss(pixels, torch.cat([boxes, GT[None, :1].expand(2, 1, 4)], 1),
                       torch.tensor([[-1, 3], [-1, -1]]))  # one image with a box, one without
    assert torch.isfinite(mixed["loss"])


def test_anchor_layout_labels_and_sampling() -> None:
    anchors = make_anchors(2, 3, 4, (8.0,), (0.5, 2.0))
    assert anchors.shape == (2 * 3 * 2, 4)
    w, h = 8 / 0.5**0.5, 8 * 0.5**0.5  # ratio 0.5 (h / w): wide
    # row 1, col 2 -> centre (10, 6); anchor index (1 * 3 + 2) * 2 + 0
    torch.testing.assert_close(anchors[10], torch.tensor([10 - w / 2, 6 - h / 2, 10 + w / 2, 6 + h / 2]))
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 8.0], [0.0, 0.0, 4.0, 10.0],
                            [50.0, 50.0, 60.0, 60.0], [20.0, 20.0, 26.0, 26.0]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [21.0, 21.0, 31.0, 31.0]])
    labels, matched = label_anchors(anchors, gt, 0.7, 0.3)
    # IoUs with box 0: 1, 0.8, 0.4 (ignored), 0 (negative); anchor 4 has IoU 25/111 with box 1, below
    # 0.3, but is that box's best anchor, so positive
    assert labels.tolist() == [1, 1, -1, 0, 1] and matched[4].item() == 1
    labels, _ = label_anchors(anchors, gt[:0], 0.7, 0.3)
    assert labels.tolist() == [0] * 5
    g = torch.Generator().manual_seed(0)
    pos_mask, neg_mask = torch.arange(100) < 10, torch.arange(100) >= 10
    pos, neg = sample_balanced(pos_mask, neg_mask, 16, 0.25, g)
    assert len(pos) == 4 and len(neg) == 12 and pos_mask[pos].all() and neg_mask[neg].all()
    assert len(set(pos.tolist())) == 4 and len(set(neg.tolist())) == 12
    pos, neg = sample_balanced(pos_mask, torch.zeros(100, dtype=torch.bool), 16, 0.5, g)
    assert len(pos) == 8 and len(neg) == 0


@pytest.mark.parametrize("name", ["yolo-tiny", "rcnn-tiny"])
def test_detect_output_contract(name: str) -> None:
    torch.manual_seed(1)
    model = create_model(name).eval()
    pixels = torch.randn(3, 1, 60, 52)  # odd-sized: not a multiple of the strides
    iou_threshold, cap = 0.3, 20
    results = model.detect(pixels, score_threshold=0.0, iou_threshold=iou_threshold, max_detections=cap)
    assert len(results) == 3
    for det in results:
        n = det["boxes"].shape[0]
        assert 0 < n <= cap
        assert det["boxes"].dtype == torch.float32 and det["scores"].dtype == torch.float32
        assert det["labels"].dtype == torch.int64 and det["labels"].shape == (n,) and det["scores"].shape == (n,)
        b = det["boxes"]
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= 52).all() and (b[:, 3] <= 60).all()
        assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
        assert (det["scores"][1:] <= det["scores"][:-1]).all()  # sorted by decreasing score
        assert ((det["labels"] >= 0) & (det["labels"] < 10)).all()
        same = det["labels"][:, None] == det["labels"][None, :]
        iou = box_iou(b, b).masked_fill(torch.eye(n, dtype=torch.bool), 0)
        assert not (iou[same] > iou_threshold).any()  # no two same-class boxes overlap past the threshold
    none = model.detect(pixels[:1], score_threshold=1.0)[0]
    assert none["boxes"].shape == (0, 4) and none["labels"].dtype == torch.int64


@pytest.mark.parametrize("name", ["yolo-tiny", "rcnn-tiny"])
def test_eval_is_deterministic_and_training_loss_is_seeded(name: str) -> None:
    torch.manual_seed(2)
    model = create_model(name)
    pixels = scene().expand(2, -1, -1, -1)
    boxes, labels = GT[None].expand(2, -1, -1), GT_LABELS[None].expand(2, -1)
    torch.manual_seed(5)
    first = model.loss(pixels, boxes, labels)["loss"]
    torch.manual_seed(5)
    second = model.loss(pixels, boxes, labels)["loss"]
    assert first.item() == second.item()  # rcnn's sampling draws its seed from the global RNG
    model.eval()
    a = model.detect(pixels, score_threshold=0.0)
    b = model.detect(pixels, score_threshold=0.0)
    for x, y in zip(a, b, strict=True):
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(x[key], y[key])
    with torch.no_grad():
        assert torch.equal(model(pixels)["obj" if name == "yolo-tiny" else "rpn_logits"],
                           model(pixels)["obj" if name == "yolo-tiny" else "rpn_logits"])


@pytest.mark.parametrize(("name", "steps"), [("yolo-tiny", 60), ("rcnn-tiny", 90)])
def test_overfitting_one_image_finds_its_rectangles(name: str, steps: int) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    assert isinstance(model, YoloDetector if name == "yolo-tiny" else FasterRCNN)
    pixels = scene()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        out = model.loss(pixels, GT[None], GT_LABELS[None])
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    assert sum(losses[-10:]) < 0.2 * sum(losses[:10])
    det = model.eval().detect(pixels, score_threshold=0.3)[0]
    iou = box_iou(det["boxes"], GT)  # (D, 3)
    for k in range(3):
        hits = (iou[:, k] > 0.5) & (det["labels"] == GT_LABELS[k])
        assert hits.any(), f"box {k} not found: {det}"


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="strides"):
        create_model("yolo-tiny", strides=(4, 16))
    with pytest.raises(ConfigError, match="level_limits"):
        create_model("yolo-tiny", level_limits=(16.0, 32.0))
    with pytest.raises(ConfigError, match="box_weights"):
        create_model("rcnn-tiny", box_weights=(1.0, 1.0))
    with pytest.raises(ConfigError, match="rpn_fg_iou"):
        create_model("rcnn-tiny", rpn_fg_iou=0.2)
