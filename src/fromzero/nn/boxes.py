"""Box operations for detection: area, pairwise IoU, (batched) non-maximum suppression, RoIAlign.

Boxes are ``(N, 4)`` float tensors ``(x1, y1, x2, y2)`` in pixel coordinates with ``x2 >= x1`` and
``y2 >= y1``. Pure torch, so the package does not depend on torchvision's compiled ops; the results
follow ``torchvision.ops`` (and Detectron2) exactly and are tested against naive references.

IoU (Jaccard index) of boxes a and b::

    inter = max(0, min(a.x2, b.x2) - max(a.x1, b.x1)) * max(0, min(a.y2, b.y2) - max(a.y1, b.y1))
    IoU   = inter / (area(a) + area(b) - inter)          (0 when the union is 0)

Greedy NMS (as in R-CNN / Faster R-CNN, and ``torchvision.ops.nms``): visit boxes by decreasing
score (a stable sort: among equal scores the lower index comes first); keep a box unless its IoU
with an already-kept box is strictly greater than ``iou_threshold``.

RoIAlign (He et al., 2017, "Mask R-CNN", https://arxiv.org/abs/1703.06870, section 3): a region
``(x1, y1, x2, y2)`` is scaled by ``spatial_scale`` (and shifted by -0.5 when ``aligned``, so that
pixel centres sit at integer + 0.5), split into ``oh x ow`` bins of size ``(h / oh, w / ow)``; each
bin is the mean of ``gh x gw`` regularly spaced bilinear samples of the feature map, with no
quantisation of coordinates::

    y(ph, iy) = y1 + ph * bin_h + (iy + 0.5) * bin_h / gh        (x likewise)
    f(y, x)   = (1-ly)(1-lx) F[y0, x0] + (1-ly) lx F[y0, x1] + ly (1-lx) F[y1, x0] + ly lx F[y1, x1]

where ``y0 = floor(y)``, ``ly = y - y0``. ``gh = sampling_ratio`` or, when ``sampling_ratio <= 0``,
``ceil(h / oh)`` per region. A sample with ``y < -1`` or ``y > H`` (x likewise) contributes 0;
otherwise coordinates are clamped to ``[0, H-1]`` as in the reference implementation.
"""

from __future__ import annotations

import torch

from fromzero.errors import DataError

# Rows of the boolean "overlaps too much" matrix computed at a time in NMS (bounds float memory).
_NMS_ROW_BLOCK = 1024


def _check_boxes(boxes: torch.Tensor, name: str = "boxes") -> None:
    """Raise DataError for a non-(N, 4) tensor, a non-finite coordinate, or x2 < x1 / y2 < y1."""
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise DataError(f"{name} must be an (N, 4) tensor of (x1, y1, x2, y2), got {shape}")
    if not boxes.is_floating_point():
        raise DataError(f"{name} must be a floating-point tensor, got {boxes.dtype}")
    bad = ~torch.isfinite(boxes).all(dim=1)
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise DataError(f"{name} row {row} has a non-finite coordinate: {boxes[row].tolist()}")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise DataError(f"{name} row {row} has x2 < x1 or y2 < y1: {boxes[row].tolist()}; boxes are (x1, y1, x2, y2)")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of each box: ``(N, 4) -> (N,)``."""
    _check_boxes(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in a (N, 4) with every box in b (M, 4), without input checks: (N, M)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # (N,)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # (M,)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)  # (N, M, 2)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    union = area_a[:, None] + area_b[None, :] - inter
    positive = union > 0
    return torch.where(positive, inter / torch.where(positive, union, torch.ones_like(union)), 0.0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU: ``(N, 4), (M, 4) -> (N, M)``; 0 where the union is empty (two degenerate boxes)."""
    _check_boxes(a, "boxes a")
    _check_boxes(b, "boxes b")
    return _pairwise_iou(a, b)


def _check_scores(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    _check_boxes(boxes)
    n = boxes.shape[0]
    if not isinstance(scores, torch.Tensor) or scores.shape != (n,):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise DataError(f"scores must be a ({n},) tensor, one per box, got {shape}")
    if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != (n,)):
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise DataError(f"labels must be a ({n},) tensor, one per box, got {shape}")


def _greedy_suppression(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, labels: torch.Tensor | None
) -> torch.Tensor:
    """Greedy NMS; boxes of different labels (when given) never suppress each other."""
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices  # (N,)
    ordered = boxes[order]
    # over[i, j]: box j (in score order) overlaps box i by more than the threshold.
    blocks = []
    for start in range(0, ordered.shape[0], _NMS_ROW_BLOCK):
        block = _pairwise_iou(ordered[start : start + _NMS_ROW_BLOCK], ordered) > iou_threshold
        if labels is not None:
            ordered_labels = labels[order]
            block &= ordered_labels[start : start + _NMS_ROW_BLOCK, None] == ordered_labels[None, :]
        blocks.append(block)
    over = torch.cat(blocks).cpu()  # (N, N) bool
    suppressed = torch.zeros(over.shape[0], dtype=torch.bool)
    kept: list[int] = []
    for i in range(over.shape[0]):
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= over[i]
    return order[torch.tensor(kept, dtype=torch.long, device=order.device)]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: ``(N, 4), (N,) -> (K,)`` kept indices by decreasing score.

    A box is dropped when its IoU with an already-kept, higher-scoring box is > ``iou_threshold``
    (strictly, as ``torchvision.ops.nms``); among equal scores the lower index is visited first.
    """
    _check_scores(boxes, scores)
    return _greedy_suppression(boxes, scores, float(iou_threshold), None)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each label: ``(N, 4), (N,), (N,) -> (K,)`` kept indices by decreasing score.

    Same result as ``torchvision.ops.batched_nms`` (which offsets each label's boxes so they cannot
    overlap); here boxes of different labels are masked out of the overlap matrix instead, which
    is exact where large coordinate offsets would lose float precision.
    """
    _check_scores(boxes, scores, labels)
    return _greedy_suppression(boxes, scores, float(iou_threshold), labels.to(boxes.device))


def _check_roi_inputs(features: torch.Tensor, rois: torch.Tensor) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise DataError(f"features must be a (B, C, H, W) tensor, got {shape}")
    if not isinstance(rois, torch.Tensor) or rois.dim() != 2 or rois.shape[1] != 5:
        shape = tuple(rois.shape) if isinstance(rois, torch.Tensor) else type(rois).__name__
        raise DataError(f"rois must be a (K, 5) tensor of (batch index, x1, y1, x2, y2), got {shape}")
    _check_boxes(rois[:, 1:], "rois")
    index = rois[:, 0]
    bad = (index != index.round()) | (index < 0) | (index >= features.shape[0])
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise DataError(
            f"rois row {row} has batch index {index[row].item()}, expected an integer in [0, {features.shape[0] - 1}]"
        )


def _sample_positions(start: torch.Tensor, bin_size: torch.Tensor, bins: int, grid: int) -> torch.Tensor:
    """Sample coordinates along one axis: ``(K,), (K,) -> (K, bins, grid)``."""
    bin_index = torch.arange(bins, dtype=start.dtype, device=start.device)  # (bins,)
    offsets = (torch.arange(grid, dtype=start.dtype, device=start.device) + 0.5) / grid  # (grid,)
    return start[:, None, None] + (bin_index[None, :, None] + offsets[None, None, :]) * bin_size[:, None, None]


def _axis_corners(pos: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
    """Neighbours and weights along one axis as in the reference bilinear_interpolate.

    Returns (valid, low, high, weight_low, weight_high), each shaped like ``pos``.
    """
    valid = (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0)
    low = pos.floor().long()
    at_edge = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(pos), pos - low.to(pos.dtype))
    return valid, low, high, 1.0 - frac, frac


def _roi_align_group(
    flat: torch.Tensor, batch: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Bin averages for rois sharing one sampling grid.

    flat (B*H*W, C); batch (K,); ys (K, oh, gh); xs (K, ow, gw) -> (K, C, oh, ow).
    """
    k, oh, gh = ys.shape
    _, ow, gw = xs.shape
    y_valid, y_low, y_high, wy_low, wy_high = (t[:, :, :, None, None] for t in _axis_corners(ys, height))
    x_valid, x_low, x_high, wx_low, wx_high = (t[:, None, None, :, :] for t in _axis_corners(xs, width))
    base = (batch * (height * width))[:, None, None, None, None]  # (K, 1, 1, 1, 1)
    valid = (y_valid & x_valid).to(flat.dtype)  # (K, oh, gh, ow, gw)
    total = flat.new_zeros(k, oh, gh, ow, gw, flat.shape[1])
    for row, wy in ((y_low, wy_low), (y_high, wy_high)):
        for col, wx in ((x_low, wx_low), (x_high, wx_high)):
            index = (base + row * width + col).expand(k, oh, gh, ow, gw)
            weight = (wy * wx * valid)[..., None]  # (K, oh, gh, ow, gw, 1)
            total = total + weight * flat[index.reshape(-1)].view(k, oh, gh, ow, gw, -1)
    pooled = total.sum(dim=(2, 4)) / max(gh * gw, 1)  # (K, oh, ow, C)
    return pooled.permute(0, 3, 1, 2)


def roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = True,
) -> torch.Tensor:
    """RoIAlign (Mask R-CNN): ``(B, C, H, W), (K, 5) -> (K, C, oh, ow)``, as ``torchvision.ops.roi_align``.

    ``rois`` rows are ``(batch index, x1, y1, x2, y2)`` in input-image coordinates; ``spatial_scale``
    maps them onto the feature map. Differentiable with respect to ``features``.
    """
    _check_roi_inputs(features, rois)
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    _, channels, height, width = features.shape
    k = rois.shape[0]
    out = features.new_zeros(k, channels, oh, ow)
    if k == 0:
        return out
    coords = rois[:, 1:].to(features.dtype) * spatial_scale - (0.5 if aligned else 0.0)  # (K, 4)
    roi_w, roi_h = coords[:, 2] - coords[:, 0], coords[:, 3] - coords[:, 1]  # (K,)
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / oh, roi_w / ow  # (K,)
    if sampling_ratio > 0:
        grid_h = torch.full((k,), sampling_ratio, dtype=torch.long)
        grid_w = grid_h
    else:
        grid_h, grid_w = torch.ceil(bin_h).long().cpu(), torch.ceil(bin_w).long().cpu()
    flat = features.permute(0, 2, 3, 1).reshape(-1, channels)  # (B*H*W, C)
    batch = rois[:, 0].round().long()  # (K,)
    for gh, gw in torch.unique(torch.stack([grid_h, grid_w], dim=1), dim=0).tolist():
        if gh <= 0 or gw <= 0:
            continue  # an empty region: no samples, the bins stay 0 as in the reference
        sel = ((grid_h == gh) & (grid_w == gw)).nonzero().squeeze(1).to(features.device)
        ys = _sample_positions(coords[sel, 1], bin_h[sel], oh, gh)  # (k, oh, gh)
        xs = _sample_positions(coords[sel, 0], bin_w[sel], ow, gw)  # (k, ow, gw)
        out = out.index_put((sel,), _roi_align_group(flat, batch[sel], ys, xs, height, width))
    return out


__all__ = ["batched_nms", "box_area", "box_iou", "nms", "roi_align"]
