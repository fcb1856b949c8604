"""Box encodings for detection heads: (dx, dy, dw, dh) deltas against a reference box, and (l, t, r, b)
distances from a point.

Deltas (R-CNN appendix C, Girshick et al. 2014, https://arxiv.org/abs/1311.2524; used by Faster R-CNN's
RPN and box head, Ren et al. 2015, https://arxiv.org/abs/1506.01497, eq. 2). For a reference box with
centre (x_a, y_a) and size (w_a, h_a) and a target box (x, y, w, h), with weights (w_x, w_y, w_w, w_h)
that scale the targets to roughly unit variance (Detectron uses (1, 1, 1, 1) for the RPN and
(10, 10, 5, 5) for the box head)::

    dx = w_x (x - x_a) / w_a        dy = w_y (y - y_a) / h_a
    dw = w_w log(w / w_a)           dh = w_h log(h / h_a)

Decoding inverts it; dw and dh are clamped at log(1000 / 16) before ``exp`` (as Detectron does) so an
untrained head cannot overflow. Widths are ``x2 - x1`` (continuous coordinates, no +1).

Distances (FCOS, Tian et al. 2019, https://arxiv.org/abs/1904.01355, eq. 1) from a point (p_x, p_y)
to the sides of a box, divided by the feature stride s::

    l = (p_x - x1) / s     t = (p_y - y1) / s     r = (x2 - p_x) / s     b = (y2 - p_y) / s

The last decoding step every detector shares, :func:`select_detections`: per-class scores above a
threshold, the top-k before NMS, NMS within each class (``nn.boxes.batched_nms``), then at most
``max_detections`` boxes by decreasing score.
"""

from __future__ import annotations

import math

import torch

from fromzero.nn.boxes import batched_nms

# Largest dw / dh decoded: boxes at most 1000/16 times the reference (Detectron's bbox_xform_clip).
DELTA_CLAMP = math.log(1000.0 / 16)


def _centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(..., 4) xyxy -> centre x, centre y, width, height, each (...)."""
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode_deltas(reference: torch.Tensor, target: torch.Tensor,
                  weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Deltas that turn ``reference`` boxes into ``target`` boxes: ``(..., 4), (..., 4) -> (..., 4)``.

    Both are xyxy with positive width and height (the log of a zero size is -inf).
    """
    wx, wy, ww, wh = weights
    ax, ay, aw, ah = _centre_size(reference)
    gx, gy, gw, gh = _centre_size(target)
    return torch.stack([wx * (gx - ax) / aw, wy * (gy - ay) / ah,
                        ww * torch.log(gw / aw), wh * torch.log(gh / ah)], dim=-1)


def decode_deltas(reference: torch.Tensor, deltas: torch.Tensor,
                  weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
                  clamp: float = DELTA_CLAMP) -> torch.Tensor:
    """Boxes from deltas: ``(..., 4) reference, (..., 4) deltas -> (..., 4)`` xyxy.

    ``reference`` broadcasts against ``deltas`` (e.g. ``(R, 1, 4)`` with class-specific ``(R, K, 4)``).
    """
    wx, wy, ww, wh = weights
    ax, ay, aw, ah = _centre_size(reference)
    dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
    dw, dh = (deltas[..., 2] / ww).clamp(max=clamp), (deltas[..., 3] / wh).clamp(max=clamp)
    cx, cy = ax + dx * aw, ay + dy * ah
    w, h = aw * torch.exp(dw), ah * torch.exp(dh)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def encode_ltrb(points: torch.Tensor, boxes: torch.Tensor, stride: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Distances from ``points`` (..., 2) to the sides of ``boxes`` (..., 4), in units of ``stride``
    (a number or a tensor broadcasting against (...)): ``-> (..., 4)`` as (l, t, r, b)."""
    px, py = points[..., 0], points[..., 1]
    ltrb = torch.stack([px - boxes[..., 0], py - boxes[..., 1], boxes[..., 2] - px, boxes[..., 3] - py], dim=-1)
    return ltrb / (stride[..., None] if isinstance(stride, torch.Tensor) else stride)


def decode_ltrb(points: torch.Tensor, distances: torch.Tensor, stride: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Boxes from (l, t, r, b) ``distances`` (..., 4) in stride units around ``points`` (..., 2): ``-> (..., 4)``."""
    d = distances * (stride[..., None] if isinstance(stride, torch.Tensor) else stride)
    px, py = points[..., 0], points[..., 1]
    return torch.stack([px - d[..., 0], py - d[..., 1], px + d[..., 2], py + d[..., 3]], dim=-1)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clamp xyxy boxes (..., 4) to the image ``[0, width] x [0, height]``."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def select_detections(boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float, iou_threshold: float,
                      max_detections: int, pre_nms_top_k: int = 1000,
                      min_size: float = 1e-2) -> dict[str, torch.Tensor]:
    """One image's detections from per-class ``scores`` (N, K) and ``boxes`` (N, 4) shared by all classes
    or (N, K, 4) class-specific (xyxy, already clipped).

    Keeps (box, class) pairs scoring above ``score_threshold``, the ``pre_nms_top_k`` best of them,
    drops boxes narrower or lower than ``min_size``, runs NMS per class and returns at most
    ``max_detections``, by decreasing score: ``{"boxes" (D, 4) float32, "scores" (D,) float32,
    "labels" (D,) int64}``.
    """
    k = scores.shape[1]
    flat = scores.reshape(-1)  # (N*K,): index = cell * K + class
    index = (flat > score_threshold).nonzero().squeeze(1)
    if index.numel() > pre_nms_top_k:
        index = index[flat[index].topk(pre_nms_top_k).indices]
    cell, label = index // k, index % k
    picked = boxes[cell] if boxes.dim() == 2 else boxes[cell, label]  # (n, 4)
    score = flat[index]
    big = ((picked[:, 2] - picked[:, 0]) >= min_size) & ((picked[:, 3] - picked[:, 1]) >= min_size)
    picked, score, label = picked[big], score[big], label[big]
    keep = batched_nms(picked, score, label, iou_threshold)[:max_detections]
    return {"boxes": picked[keep].float(), "scores": score[keep].float(), "labels": label[keep].long()}


__all__ = [
    "DELTA_CLAMP", "clip_boxes", "decode_deltas", "decode_ltrb", "encode_deltas", "encode_ltrb", "select_detections",
]
