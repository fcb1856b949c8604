"""Image metrics against values counted or computed by hand on tiny cases (COCO AP with its 101 recall points)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fromzero.errors import DataError
from fromzero.eval.image_metrics import (
    classification_scores,
    denoising_scores,
    detection_scores,
    segmentation_scores,
)

RECALL_POINTS = 101  # COCO interpolates precision at recall 0, 0.01, ..., 1


def _boxes(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def _pred(boxes: torch.Tensor, scores: list[float], labels: list[int]) -> dict:
    return {"boxes": boxes, "scores": torch.tensor(scores), "labels": torch.tensor(labels)}


def _target(boxes: torch.Tensor, labels: list[int]) -> dict:
    return {"boxes": boxes, "labels": torch.tensor(labels)}


# ----------------------------------------------------------------------------------------- classification


def test_classification_scores_equal_a_hand_count() -> None:
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 1]
    s = classification_scores(y_true, y_pred, ["a", "b", "c", "d"])
    # a: TP 1 FP 1 FN 1; b: TP 2 FP 2 FN 0; c: TP 1 FP 0 FN 2; d: never seen (0 in the macro means)
    hand = {"a": (1 / 2, 1 / 2, 1 / 2, 2), "b": (1 / 2, 1.0, 2 / 3, 2), "c": (1.0, 1 / 3, 1 / 2, 3),
            "d": (0.0, 0.0, 0.0, 0)}
    assert s["accuracy"] == pytest.approx(4 / 7)
    for name, (p, r, f, support) in hand.items():
        got = s["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f))
        assert got["support"] == support
    assert s["precision_macro"] == pytest.approx(sum(v[0] for v in hand.values()) / 4)
    assert s["recall_macro"] == pytest.approx(sum(v[1] for v in hand.values()) / 4)
    assert s["f1_macro"] == pytest.approx(sum(v[2] for v in hand.values()) / 4)


def test_classification_rejects_bad_labels() -> None:
    with pytest.raises(DataError, match="outside the 2 classes"):
        classification_scores([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(DataError, match="one per image"):
        classification_scores([0, 1], [0], ["a", "b"])


# ---------------------------------------------------------------------------------------------- detection


def test_perfect_detections_score_one() -> None:
    targets = [_target(_boxes([0, 0, 10, 10], [20, 20, 35, 30]), [0, 2]), _target(_boxes([5, 5, 15, 25]), [2])]
    preds = [_pred(t["boxes"].clone(), [0.9, 0.8][: len(t["labels"])], t["labels"].tolist()) for t in targets]
    s = detection_scores(preds, targets, class_names=["cat", "dog", "bird"])
    for key in ("map_50", "map", "map_75", "mar_100"):
        assert s[key] == pytest.approx(1.0), key
    assert s["per_class"] == pytest.approx({"cat": 1.0, "bird": 1.0})  # "dog" has no truth: left out


def test_shifted_box_counts_at_iou_05_but_not_075() -> None:
    target, pred = [0, 0, 10, 10], [2.4, 0, 12.4, 10]
    inter = (10 - 2.4) * 10
    iou = inter / (2 * 100 - inter)  # 76 / 124
    assert 0.6 < iou < 0.65
    s = detection_scores([_pred(_boxes(pred), [0.9], [0])], [_target(_boxes(target), [0])])
    assert s["map_50"] == pytest.approx(1.0)
    assert s["map_75"] == 0.0
    # matched at the thresholds 0.50, 0.55, 0.60 of the ten 0.50:0.05:0.95
    assert s["map"] == pytest.approx(3 / 10)
    assert s["mar_100"] == pytest.approx(3 / 10)


def test_missed_object_halves_recall_and_ap() -> None:
    targets = [_target(_boxes([0, 0, 10, 10], [20, 20, 30, 30]), [0, 0])]
    s = detection_scores([_pred(_boxes([0, 0, 10, 10]), [0.9], [0])], targets)
    # recall reaches 1/2 at precision 1: the 51 recall points 0..0.50 get precision 1, the 50 above get 0
    assert s["map_50"] == pytest.approx(51 / RECALL_POINTS)
    assert s["map"] == pytest.approx(51 / RECALL_POINTS)
    assert s["mar_100"] == pytest.approx(0.5)


def test_duplicate_ranked_after_the_true_positive_leaves_ap_at_one() -> None:
    # detections: TP (p 1, r 1), then the duplicate, a FP (p 1/2, r 1); interpolated precision is 1 at every r
    target = [_target(_boxes([0, 0, 10, 10]), [0])]
    s = detection_scores([_pred(_boxes([0, 0, 10, 10], [0, 0, 10, 10]), [0.9, 0.8], [0, 0])], target)
    assert s["map"] == pytest.approx(1.0) and s["mar_100"] == pytest.approx(1.0)
    # a false positive ranked first instead: precision 1/2 at recall 1, so every recall point gets 1/2
    s = detection_scores([_pred(_boxes([40, 40, 50, 50], [0, 0, 10, 10]), [0.95, 0.9], [0, 0])], target)
    assert s["map"] == pytest.approx(0.5)


def test_duplicate_between_two_true_positives_by_hand() -> None:
    targets = [_target(_boxes([0, 0, 10, 10], [20, 20, 30, 30]), [0, 0])]
    preds = [_pred(_boxes([0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]), [0.9, 0.8, 0.7], [0, 0, 0])]
    s = detection_scores(preds, targets)
    # ranked: TP (p 1, r 1/2), FP (p 1/2, r 1/2), TP (p 2/3, r 1): precision 1 up to r = 0.50 (51 points),
    # then 2/3 for the 50 points above
    assert s["map_50"] == pytest.approx((51 * 1 + 50 * 2 / 3) / RECALL_POINTS)
    assert s["map"] == pytest.approx(s["map_50"])


def test_detection_rejects_bad_inputs() -> None:
    with pytest.raises(DataError, match="2 targets but 1 predictions"):
        detection_scores([_pred(_boxes([0, 0, 1, 1]), [0.5], [0])], [_target(_boxes([0, 0, 1, 1]), [0])] * 2)
    with pytest.raises(DataError, match="no boxes"):
        detection_scores([_pred(_boxes([0, 0, 1, 1]), [0.5], [0])], [_target(torch.zeros(0, 4), [])])
    with pytest.raises(DataError, match="2 boxes but 1 labels"):
        detection_scores([_pred(_boxes([0, 0, 1, 1]), [0.5], [0])], [_target(_boxes([0, 0, 1, 1], [1, 1, 2, 2]), [0])])


# ------------------------------------------------------------------------------------------- segmentation

X = 255  # ignored pixel
TRUE = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, X, X], [2, 2, 0, 0]]])
PRED = np.array([[[0, 0, 1, 0], [0, 1, 1, 1], [2, 0, 2, 1], [2, 2, 0, 0]]])


def test_segmentation_4x4_by_hand() -> None:
    # confusion over the 14 kept pixels (rows true, cols pred): [[5,1,0],[1,3,0],[1,0,3]]
    # TP 5,3,3; FP 2,1,0; FN 1,1,1 -> IoU 5/8, 3/5, 3/4; Dice 10/13, 6/8, 6/7
    s = segmentation_scores(torch.from_numpy(PRED), torch.from_numpy(TRUE), 3, ["bg", "a", "b"])
    assert s["per_class_iou"] == pytest.approx({"bg": 5 / 8, "a": 3 / 5, "b": 3 / 4})
    assert s["miou"] == pytest.approx((5 / 8 + 3 / 5 + 3 / 4) / 3)
    assert s["miou_objects"] == pytest.approx((3 / 5 + 3 / 4) / 2)
    assert s["dice"] == pytest.approx((10 / 13 + 6 / 8 + 6 / 7) / 3)
    assert s["dice_objects"] == pytest.approx((6 / 8 + 6 / 7) / 2)
    assert s["pixel_accuracy"] == pytest.approx(11 / 14)


def test_segmentation_absent_and_only_predicted_classes() -> None:
    # a 4th class nobody uses is left out of every mean
    s = segmentation_scores(PRED, TRUE, 4, ["bg", "a", "b", "c"])
    assert "c" not in s["per_class_iou"]
    assert s["miou"] == pytest.approx((5 / 8 + 3 / 5 + 3 / 4) / 3)
    # predicting it once (on a true-1 pixel) gives it IoU 0, which counts
    pred = PRED.copy()
    pred[0, 0, 3] = 3  # was 0 (true 1): bg FP 2 -> 1, a unchanged (FN 1), c: TP 0 FP 1
    s = segmentation_scores(pred, TRUE, 4, ["bg", "a", "b", "c"])
    assert s["per_class_iou"] == pytest.approx({"bg": 5 / 7, "a": 3 / 5, "b": 3 / 4, "c": 0.0})
    assert s["miou"] == pytest.approx((5 / 7 + 3 / 5 + 3 / 4 + 0) / 4)
    assert s["miou_objects"] == pytest.approx((3 / 5 + 3 / 4 + 0) / 3)


def test_segmentation_rejects_bad_masks() -> None:
    with pytest.raises(DataError, match="outside"):
        segmentation_scores(PRED, TRUE, 2)
    with pytest.raises(DataError, match="every pixel is ignored"):
        segmentation_scores(PRED, np.full_like(TRUE, X), 3)
    with pytest.raises(DataError, match="do not match"):
        segmentation_scores(PRED[:, :3], TRUE, 3)


# ---------------------------------------------------------------------------------------------- denoising


def test_psnr_and_ssim_by_hand() -> None:
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.2, 0.8, size=(2, 1, 8, 8))
    noisy = clean + rng.normal(0, 0.05, size=clean.shape).clip(-0.15, 0.15)  # stays inside [0, 1]
    denoised = clean + 0.01
    hand_noisy = np.mean([10 * math.log10(1 / np.mean((clean[i] - noisy[i]) ** 2)) for i in range(2)])
    s = denoising_scores(torch.from_numpy(clean), noisy, denoised)
    assert s["noisy_psnr"] == pytest.approx(hand_noisy)
    assert s["psnr"] == pytest.approx(10 * math.log10(1 / 0.01**2))  # 40 dB
    assert s["psnr_gain"] == pytest.approx(40 - hand_noisy)
    assert s["ssim"] > s["noisy_ssim"]


def test_ssim_of_flat_images_by_hand_and_outputs_are_clipped() -> None:
    # flat windows have zero variance, so SSIM reduces to its luminance term (2ab + C1) / (a^2 + b^2 + C1),
    # C1 = (0.01 * data_range)^2
    clean = np.full((1, 3, 8, 8), 0.5)
    c1 = 0.01**2
    s = denoising_scores(clean, clean, np.full_like(clean, 0.6))
    assert s["ssim"] == pytest.approx((2 * 0.5 * 0.6 + c1) / (0.5**2 + 0.6**2 + c1))
    assert s["noisy_ssim"] == pytest.approx(1.0) and s["noisy_psnr"] == math.inf  # identical: MSE 0
    assert s["psnr"] == pytest.approx(20.0)
    bright = np.full((1, 1, 8, 8), 0.8)
    s = denoising_scores(bright, bright, bright + 0.5)  # the output is clipped to 1.0: error 0.2
    assert s["psnr"] == pytest.approx(10 * math.log10(1 / 0.2**2))


def test_denoising_rejects_mismatched_shapes() -> None:
    with pytest.raises(DataError, match="one shape"):
        denoising_scores(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)), np.zeros((2, 1, 8, 8)))
