"""Image-task metrics as thin wrappers over established libraries; every function returns plain Python numbers.

    classification   scikit-learn: accuracy, macro and per-class precision / recall / F1, support
    detection        pycocotools' COCOeval (the COCO protocol; Lin et al., 2014, "Microsoft COCO: Common
                     Objects in Context", https://arxiv.org/abs/1405.0312): mAP@0.5, mAP@0.5:0.95,
                     mAP@0.75, mAR@100, per-class AP@0.5:0.95
    segmentation     a confusion matrix from torchmetrics: IoU_k = TP / (TP + FP + FN),
                     Dice_k = 2 TP / (2 TP + FP + FN) (= F1 of class k), pixel accuracy
    denoising        scikit-image: PSNR = 10 log10(1 / MSE) and SSIM (Wang et al., 2004, "Image Quality
                     Assessment: From Error Visibility to Structural Similarity") on images in [0, 1]

Detection follows COCO exactly: detections are sorted by score and matched greedily to the unmatched
ground-truth box of the same class with the highest IoU >= t; a second detection of a matched object
is a false positive. AP at one threshold is the mean over the 101 recall points r = 0, 0.01, ..., 1 of
the interpolated precision max{p(r') : r' >= r} (0 past the highest recall reached); mAP averages over
the classes that have ground truth (a class only ever predicted is left out, as in COCO) and, for
mAP@0.5:0.95, over the ten IoU thresholds 0.5, 0.55, ..., 0.95. mAR@100 is the recall with at most 100
detections per image, averaged the same way. torchmetrics' ``MeanAveragePrecision(backend="pycocotools")``
wraps this same COCOeval but needs torchvision (only to convert boxes to xywh) and, by default, passes
float32 IoU / recall thresholds, which moves some values in the third decimal; given COCO's float64
thresholds it agrees with this function to float32 precision. Calling COCOeval directly keeps the
official protocol without a torchvision dependency.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fromzero.errors import DataError


def _np(x: Any) -> np.ndarray:
    """A tensor or array-like as a numpy array (on the CPU, detached)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ----------------------------------------------------------------------------------------- classification


def classification_scores(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]
                          ) -> dict[str, Any]:
    """accuracy, macro precision / recall / F1 over all ``class_names`` and the same per class with support.

    Class ``k`` is ``class_names[k]``; a class never predicted has precision 0 (``zero_division=0``), and
    a class absent from both sequences still counts (as 0) in the macro means.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    t, p = _np(y_true).reshape(-1), _np(y_pred).reshape(-1)
    if len(t) != len(p) or len(t) == 0:
        raise DataError(f"classification scores: {len(t)} labels but {len(p)} predictions; pass one per image")
    k = len(class_names)
    for what, v in (("label", t), ("prediction", p)):
        if v.min() < 0 or v.max() >= k:
            raise DataError(f"classification scores: a {what} is outside the {k} classes [0, {k}); "
                            "pass class indices that match class_names")
    labels = list(range(k))
    out: dict[str, Any] = {"accuracy": float(accuracy_score(t, p))}
    mp, mr, mf, _ = precision_recall_fscore_support(t, p, labels=labels, average="macro", zero_division=0)
    out.update({"precision_macro": float(mp), "recall_macro": float(mr), "f1_macro": float(mf)})
    ps, rs, fs, ss = precision_recall_fscore_support(t, p, labels=labels, average=None, zero_division=0)
    out["per_class"] = {name: {"precision": float(ps[i]), "recall": float(rs[i]), "f1": float(fs[i]),
                               "support": int(ss[i])} for i, name in enumerate(class_names)}
    return out


# ---------------------------------------------------------------------------------------------- detection


def _coco_annotations(items: Sequence[dict], with_scores: bool, what: str) -> list[dict]:
    """COCO annotation dicts (bbox xywh) for one list of per-image dicts with xyxy boxes."""
    annotations = []
    for image_id, item in enumerate(items):
        boxes = _np(item["boxes"]).astype(np.float64).reshape(-1, 4)  # (M, 4) xyxy
        labels = _np(item["labels"]).astype(np.int64).reshape(-1)
        scores = _np(item["scores"]).astype(np.float64).reshape(-1) if with_scores else None
        if len(labels) != len(boxes) or (scores is not None and len(scores) != len(boxes)):
            raise DataError(f"detection scores: {what} {image_id} has {len(boxes)} boxes but {len(labels)} labels"
                            + ("" if scores is None else f" and {len(scores)} scores") + "; pass one per box")
        for j, (x1, y1, x2, y2) in enumerate(boxes):
            w, h = x2 - x1, y2 - y1
            ann = {"id": len(annotations) + 1,  # COCOeval reads id 0 as "unmatched": start at 1
                   "image_id": image_id, "bbox": [x1, y1, w, h], "area": w * h,
                   "category_id": int(labels[j]), "iscrowd": 0}
            if scores is not None:
                ann["score"] = float(scores[j])
            annotations.append(ann)
    return annotations


def _coco(images: list[dict], annotations: list[dict], categories: list[dict]) -> Any:
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco.createIndex()
    return coco


def detection_scores(preds: Sequence[dict], targets: Sequence[dict], class_names: Sequence[str] | None = None
                     ) -> dict[str, Any]:
    """COCO box metrics: ``map_50``, ``map`` (0.5:0.95), ``map_75``, ``mar_100`` and ``per_class`` AP@0.5:0.95.

    ``preds``: one dict per image with boxes (N, 4) xyxy pixels, scores (N,), labels (N,);
    ``targets``: boxes (M, 4) and labels (M,). Tensors or arrays. ``per_class`` maps
    ``class_names[k]`` (or ``str(k)``) to AP for each class that has ground truth (see the module notes).
    """
    from pycocotools.cocoeval import COCOeval

    if len(preds) != len(targets) or len(targets) == 0:
        raise DataError(f"detection scores: {len(targets)} targets but {len(preds)} predictions; "
                        "pass one dict per image")
    truth = _coco_annotations(targets, with_scores=False, what="target")
    found = _coco_annotations(preds, with_scores=True, what="prediction")
    if not truth:
        raise DataError("detection scores: the targets hold no boxes, so AP is undefined; evaluate on images "
                        "that have objects")
    category_ids = sorted({a["category_id"] for a in truth + found})
    images = [{"id": i} for i in range(len(targets))]
    categories = [{"id": c} for c in category_ids]
    evaluator = COCOeval(_coco(images, truth, categories), _coco(images, found, categories), "bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats  # [AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl]
    precision = evaluator.eval["precision"]  # (T iou, R recall, K class, A area, M max-dets); -1 = no truth
    per_class = {}
    for k, category in enumerate(category_ids):
        p = precision[:, :, k, 0, -1]  # area "all", 100 detections
        if (p > -1).any():
            name = class_names[category] if class_names is not None and category < len(class_names) else str(category)
            per_class[name] = float(p[p > -1].mean())
    return {"map_50": float(stats[1]), "map": float(stats[0]), "map_75": float(stats[2]),
            "mar_100": float(stats[8]), "per_class": per_class}


# ------------------------------------------------------------------------------------------- segmentation


def _confusion(pred: np.ndarray, true: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """(K, K) pixel counts, rows the true class, columns the predicted; ignored pixels dropped."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    if pred.shape != true.shape:
        raise DataError(f"segmentation scores: predicted masks {pred.shape} do not match true masks {true.shape}")
    kept = true != ignore_index
    if not kept.any():
        raise DataError(f"segmentation scores: every pixel is ignored ({ignore_index}); nothing to score")
    for what, values in (("true", true[kept]), ("predicted", pred)):
        if values.min() < 0 or values.max() >= num_classes:
            raise DataError(f"segmentation scores: a {what} mask holds a class outside [0, {num_classes}) "
                            f"(ignore value {ignore_index} aside); check num_classes")
    matrix = multiclass_confusion_matrix(torch.from_numpy(pred.astype(np.int64)).reshape(-1),
                                         torch.from_numpy(true.astype(np.int64)).reshape(-1),
                                         num_classes, ignore_index=ignore_index, validate_args=False)
    return matrix.numpy().astype(np.int64)


def segmentation_scores(pred: Any, true: Any, num_classes: int, class_names: Sequence[str] | None = None,
                        ignore_index: int = 255) -> dict[str, Any]:
    """mIoU, Dice and pixel accuracy of class masks (N, H, W) (0 background, k + 1 class k; 255 ignored).

    The counts are summed over all images first (the PASCAL VOC / Cityscapes way), then per class
    IoU = TP / (TP + FP + FN) and Dice = 2 TP / (2 TP + FP + FN). A class absent from both the
    predictions and the truth has no defined IoU: it is left out of the means and of ``per_class_iou``
    (a class that is only predicted, or only true, counts with IoU 0). ``miou`` and ``dice`` average
    over every present class, background included; ``miou_objects`` and ``dice_objects`` over present
    classes other than 0 (NaN when no object class is present). ``class_names[k]`` names mask value k.
    """
    matrix = _confusion(_np(pred), _np(true), num_classes, ignore_index)
    tp = np.diag(matrix).astype(np.float64)
    fp, fn = matrix.sum(0) - tp, matrix.sum(1) - tp
    present = (tp + fp + fn) > 0
    iou = np.divide(tp, tp + fp + fn, out=np.zeros_like(tp), where=present)
    dice = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=present)
    objects = present.copy()
    objects[0] = False
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    if len(names) != num_classes:
        raise DataError(f"segmentation scores: {len(names)} class names for {num_classes} classes; "
                        "name every mask value, background first")
    nan = float("nan")
    return {"miou": float(iou[present].mean()), "miou_objects": float(iou[objects].mean()) if objects.any() else nan,
            "dice": float(dice[present].mean()),
            "dice_objects": float(dice[objects].mean()) if objects.any() else nan,
            "pixel_accuracy": float(tp.sum() / matrix.sum()),
            "per_class_iou": {names[k]: float(iou[k]) for k in range(num_classes) if present[k]}}


# ---------------------------------------------------------------------------------------------- denoising


def _images01(x: Any, what: str) -> np.ndarray:
    a = _np(x).astype(np.float64)
    if a.ndim != 4:
        raise DataError(f"denoising scores: {what} images must be (N, C, H, W), got shape {a.shape}")
    return a


def image_psnr(clean: np.ndarray, other: np.ndarray) -> float:
    """PSNR in dB of one image (C, H, W) in [0, 1] against its clean version (inf when identical)."""
    from skimage.metrics import peak_signal_noise_ratio

    with np.errstate(divide="ignore"):  # identical images: MSE 0, PSNR inf (not a warning)
        return float(peak_signal_noise_ratio(clean, np.clip(other, 0.0, 1.0), data_range=1.0))


def image_ssim(clean: np.ndarray, other: np.ndarray) -> float:
    """SSIM of one image (C, H, W) in [0, 1]: scikit-image's uniform 7x7 window, or the largest odd one that
    fits a smaller image (at least 3x3)."""
    from skimage.metrics import structural_similarity

    if min(clean.shape[1:]) < 3:
        raise DataError(f"denoising scores: SSIM needs images of at least 3x3 pixels, got {clean.shape[1:]}")
    win = min(7, *clean.shape[1:])
    win -= 1 - win % 2  # odd, as skimage requires
    return float(structural_similarity(clean, np.clip(other, 0.0, 1.0), data_range=1.0, channel_axis=0,
                                       win_size=win))


def denoising_scores(clean: Any, noisy: Any, denoised: Any) -> dict[str, float]:
    """PSNR (dB) and SSIM of the noisy input and of the denoised output against the clean images.

    Images (N, C, H, W) in [0, 1] (outputs are clipped to [0, 1]); each metric is computed per image and
    averaged over images, as denoising papers report: ``noisy_psnr`` / ``noisy_ssim`` score the input,
    ``psnr`` / ``ssim`` the output, ``psnr_gain`` = psnr - noisy_psnr (dB).
    """
    c, n, d = _images01(clean, "clean"), _images01(noisy, "noisy"), _images01(denoised, "denoised")
    if not (c.shape == n.shape == d.shape) or len(c) == 0:
        raise DataError(f"denoising scores: clean {c.shape}, noisy {n.shape} and denoised {d.shape} images "
                        "must have one shape and hold at least one image")
    noisy_psnr = float(np.mean([image_psnr(a, b) for a, b in zip(c, n, strict=True)]))
    psnr = float(np.mean([image_psnr(a, b) for a, b in zip(c, d, strict=True)]))
    return {"noisy_psnr": noisy_psnr, "psnr": psnr, "psnr_gain": psnr - noisy_psnr,
            "noisy_ssim": float(np.mean([image_ssim(a, b) for a, b in zip(c, n, strict=True)])),
            "ssim": float(np.mean([image_ssim(a, b) for a, b in zip(c, d, strict=True)]))}
