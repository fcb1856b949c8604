"""A single-stage, anchor-free detector (YOLOX / FCOS style) on a small CNN with a two-level FPN, in one file.

    C_i  = stage_i(C_{i-1})             stem at stride 1, then stride-2 stages (ConvBNAct + BasicBlocks)
    P_n  = lat_n(C_n);  P_l = smooth_l(lat_l(C_l) + up(P_{l+1}))          top-down FPN at ``strides``
    per cell of each level (shared decoupled head, YOLOX):
        obj (1), cls (K)      logits;   score(k) = sigmoid(obj) * sigmoid(cls_k)
        (l, t, r, b)          = softplus(raw), distances in stride units from the cell centre

Target assignment (FCOS centre sampling, Tian et al. 2019, https://arxiv.org/abs/1904.01355, sec. 3.2
and its "center sampling" variant): a ground-truth box trains the one level matching its size (its
longer side <= ``level_limits[l]``, the first such l; larger boxes go to the coarsest level). On that
level, a cell with centre p = ((j + 0.5) s, (i + 0.5) s) is positive for the box when p lies strictly
inside the box and strictly within ``center_radius * s`` of the box centre on both axes. The cell
containing the box centre is positive too, so a box smaller than a cell still gets one. A cell claimed
by several boxes takes the smallest (FCOS's rule); every other cell is background.

Loss (YOLOX, Ge et al. 2021, https://arxiv.org/abs/2107.08430), all sums divided by the number of
positive cells (at least 1, so an image with no boxes gives a pure background objectness loss)::

    L = w_obj BCE(obj, 1[positive]) over all cells + w_cls BCE(cls, onehot) over positives
        + w_box sum_pos (1 - GIoU(decoded box, ground truth))

GIoU (Rezatofighi et al. 2019, https://arxiv.org/abs/1902.09630): IoU - |hull \\ union| / |hull|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.config import field, require
from fromzero.models.image_config import require_image_io
from fromzero.models.registry import register_family, register_model
from fromzero.nn.box_coder import clip_boxes, decode_ltrb, select_detections
from fromzero.nn.conv import ACTIVATIONS, ConvBNAct, downsample_stage, init_conv_weights


@dataclass(frozen=True)
class YoloConfig:
    """Shape and training choices of the anchor-free detector. Validated on construction."""

    in_channels: int = field(1, help="image channels (1 grayscale, 3 RGB)")
    num_classes: int = field(10, help="object classes (no background class)")
    widths: tuple[int, ...] = field((8, 16, 32, 64), help="channels of the stride-1 stem, then of each stride-2 "
                                    "stage (strides 2, 4, 8, ...); the last stage's stride is max(strides)")
    blocks: int = field(1, help="BasicBlocks after each stage's strided conv")
    strides: tuple[int, ...] = field((4, 8), help="feature strides the head predicts on, finest first")
    level_limits: tuple[float, ...] = field((16.0,), help="a box whose longer side (pixels) is <= level_limits[l] "
                                            "trains level l (first match; larger: the last level)")
    head_width: int = field(32, help="channels of the FPN and of the head")
    center_radius: float = field(1.5, help="centre-sampling radius in strides (FCOS: 1.5)")
    act: str = field("silu", help="activation: relu | silu | gelu")
    obj_weight: float = field(1.0, help="weight of the objectness loss")
    cls_weight: float = field(1.0, help="weight of the classification loss")
    box_weight: float = field(5.0, help="weight of the GIoU loss (YOLOX: 5)")
    prior_prob: float = field(0.01, help="initial objectness / class probability (RetinaNet's prior)")
    pre_nms_top_k: int = field(1000, help="best (cell, class) pairs kept per image before NMS in detect()")

    def __post_init__(self) -> None:
        require_image_io(self.in_channels, self.num_classes, 1)
        require(len(self.widths) >= 2 and all(w > 0 for w in self.widths), "widths",
                f"needs a stem and at least one stage, all positive, got {list(self.widths)}")
        require(self.blocks >= 0, "blocks", f"must be >= 0, got {self.blocks}")
        good = all(s >= 2 and s & (s - 1) == 0 for s in self.strides)
        good = good and list(self.strides) == sorted(set(self.strides))
        require(len(self.strides) >= 1 and good, "strides",
                f"must be increasing powers of 2 (>= 2), got {list(self.strides)}")
        deepest = 2 ** (len(self.widths) - 1)
        require(max(self.strides) == deepest, "strides",
                f"the last stride must be the backbone's, {deepest} for {len(self.widths)} widths; "
                f"got {list(self.strides)} (add or remove widths)")
        require(len(self.level_limits) == len(self.strides) - 1
                and list(self.level_limits) == sorted(self.level_limits), "level_limits",
                f"needs {len(self.strides) - 1} increasing sizes (one per boundary between strides), "
                f"got {list(self.level_limits)}")
        require(self.head_width > 0, "head_width", f"must be positive, got {self.head_width}")
        require(self.center_radius > 0, "center_radius", f"must be positive, got {self.center_radius}")
        require(self.act in ACTIVATIONS and self.act != "none", "act",
                f"unknown activation {self.act!r}; choose relu, silu or gelu")
        for key in ("obj_weight", "cls_weight", "box_weight"):
            require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        require(0 < self.prior_prob < 1, "prior_prob", f"must be in (0, 1), got {self.prior_prob}")
        require(self.pre_nms_top_k > 0, "pre_nms_top_k", f"must be positive, got {self.pre_nms_top_k}")


def generalized_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise GIoU of xyxy boxes: ``(..., 4), (..., 4) -> (...)`` in [-1, 1]."""
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a + area_b - inter
    hull_wh = torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    eps = torch.finfo(a.dtype).eps
    return inter / union.clamp(min=eps) - (hull - union) / hull.clamp(min=eps)


def assign_cells(points: torch.Tensor, strides: torch.Tensor, levels: torch.Tensor, boxes: torch.Tensor,
                 labels: torch.Tensor, level_limits: tuple[float, ...], center_radius: float) -> torch.Tensor:
    """Centre-sampling assignment (module docstring): the box each cell trains on, -1 for background.

    points (N, 2) cell centres in pixels; strides (N,); levels (N,) level index of each cell;
    boxes (B, M, 4) xyxy; labels (B, M), -1 = padding -> (B, N) index into M, or -1.
    """
    b, m = labels.shape
    n = points.shape[0]
    if m == 0:
        return torch.full((b, n), -1, dtype=torch.long, device=points.device)
    wh = boxes[..., 2:] - boxes[..., :2]  # (B, M, 2)
    limits = torch.tensor(level_limits, dtype=boxes.dtype, device=boxes.device)
    box_level = torch.bucketize(wh.max(-1).values.contiguous(), limits)  # (B, M): first l with size <= limit
    px, py = points[None, :, 0, None], points[None, :, 1, None]  # (1, N, 1)
    s = strides[None, :, None].to(boxes.dtype)  # (1, N, 1)
    x1, y1, x2, y2 = (boxes[:, None, :, i] for i in range(4))  # (B, 1, M)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    radius = center_radius * s
    inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
    central = ((px - cx).abs() < radius) & ((py - cy).abs() < radius)
    centre_cell = (torch.floor(cx / s) == torch.floor(px / s)) & (torch.floor(cy / s) == torch.floor(py / s))
    positive = ((inside & central) | centre_cell) & (levels[None, :, None] == box_level[:, None, :])
    positive &= (labels >= 0)[:, None, :]  # (B, N, M)
    area = (wh[..., 0] * wh[..., 1])[:, None, :].expand(b, n, m)
    area = torch.where(positive, area, torch.full_like(area, math.inf))
    smallest, index = area.min(dim=-1)  # (B, N)
    return torch.where(torch.isfinite(smallest), index, torch.full_like(index, -1))


class YoloDetector(nn.Module):
    """Anchor-free detector. ``forward(pixels)`` -> raw head outputs; :meth:`loss`; :meth:`detect`."""

    def __init__(self, config: YoloConfig) -> None:
        super().__init__()
        c = self.config = config
        self.stem = ConvBNAct(c.in_channels, c.widths[0], 3, 1, c.act)
        pairs = zip(c.widths[:-1], c.widths[1:], strict=True)
        self.stages = nn.ModuleList(downsample_stage(a, b, c.blocks, c.act) for a, b in pairs)
        self.level_stage = [int(math.log2(s)) - 1 for s in c.strides]  # stage index feeding each level
        hw = c.head_width
        self.lateral = nn.ModuleList(nn.Conv2d(c.widths[i + 1], hw, 1) for i in self.level_stage)
        self.smooth = nn.ModuleList(ConvBNAct(hw, hw, 3, 1, c.act) for _ in c.strides)
        self.cls_branch = ConvBNAct(hw, hw, 3, 1, c.act)  # decoupled head (YOLOX): class / box+objectness
        self.reg_branch = ConvBNAct(hw, hw, 3, 1, c.act)
        self.cls_pred = nn.Conv2d(hw, c.num_classes, 1)
        self.obj_pred = nn.Conv2d(hw, 1, 1)
        self.box_pred = nn.Conv2d(hw, 4, 1)
        init_conv_weights(self)
        prior = -math.log((1 - c.prior_prob) / c.prior_prob)  # sigmoid(prior) = prior_prob: few early false hits
        for pred in (self.cls_pred, self.obj_pred):
            nn.init.normal_(pred.weight, std=0.01)
            nn.init.constant_(pred.bias, prior)
        nn.init.normal_(self.box_pred.weight, std=0.01)
        nn.init.zeros_(self.box_pred.bias)

    def _pyramid(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """pixels (B, C, H, W) -> one (B, head_width, H/s, W/s) map per stride, finest first."""
        x = self.stem(pixels)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        laterals = [lat(feats[i]) for lat, i in zip(self.lateral, self.level_stage, strict=True)]
        out = [self.smooth[-1](laterals[-1])]
        for lvl in range(len(laterals) - 2, -1, -1):  # top-down: add the upsampled coarser level
            up = F.interpolate(out[0], size=laterals[lvl].shape[-2:], mode="nearest")
            out.insert(0, self.smooth[lvl](laterals[lvl] + up))
        return out

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """pixels (B, C, H, W) -> ``obj`` (B, N) and ``cls`` (B, N, K) logits, ``ltrb`` (B, N, 4) distances in
        stride units, and per cell ``points`` (N, 2) centres in pixels, ``strides`` (N,), ``levels`` (N,);
        N = cells of all levels, finest level first, row-major within a level."""
        objs, clss, boxes, points, strides, levels = [], [], [], [], [], []
        for lvl, (feat, s) in enumerate(zip(self._pyramid(pixels), self.config.strides, strict=True)):
            b, _, h, w = feat.shape
            reg = self.reg_branch(feat)
            objs.append(self.obj_pred(reg).flatten(2).transpose(1, 2))  # (B, h*w, 1)
            boxes.append(F.softplus(self.box_pred(reg)).flatten(2).transpose(1, 2))  # (B, h*w, 4)
            clss.append(self.cls_pred(self.cls_branch(feat)).flatten(2).transpose(1, 2))  # (B, h*w, K)
            ys, xs = torch.meshgrid(torch.arange(h, device=feat.device), torch.arange(w, device=feat.device),
                                    indexing="ij")
            points.append((torch.stack([xs, ys], -1).reshape(-1, 2).to(feat.dtype) + 0.5) * s)  # (h*w, 2)
            strides.append(torch.full((h * w,), float(s), device=feat.device))
            levels.append(torch.full((h * w,), lvl, dtype=torch.long, device=feat.device))
        return {"obj": torch.cat(objs, 1).squeeze(-1), "cls": torch.cat(clss, 1), "ltrb": torch.cat(boxes, 1),
                "points": torch.cat(points), "strides": torch.cat(strides), "levels": torch.cat(levels)}

    def loss(self, pixels: torch.Tensor, boxes: torch.Tensor, box_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """pixels (B, C, H, W); boxes (B, M, 4) xyxy pixels; box_labels (B, M), -1 = padding ->
        ``loss`` (weighted total) and ``loss_obj``, ``loss_cls``, ``loss_box`` (module docstring)."""
        c = self.config
        out = self(pixels)
        obj, cls, ltrb = out["obj"].float(), out["cls"].float(), out["ltrb"].float()  # losses in fp32
        boxes = boxes.float()
        match = assign_cells(out["points"].float(), out["strides"], out["levels"], boxes, box_labels,
                             c.level_limits, c.center_radius)  # (B, N)
        positive = match >= 0
        num_pos = positive.sum().clamp(min=1).float()
        loss_obj = F.binary_cross_entropy_with_logits(obj, positive.float(), reduction="sum") / num_pos
        index = match.clamp(min=0)
        if boxes.shape[1] == 0:  # no rows at all: nothing to gather, no positives
            target_boxes, target_labels = ltrb.new_zeros(0, 4), match.new_zeros(0)
        else:
            target_boxes = boxes.gather(1, index[..., None].expand(-1, -1, 4))[positive]  # (P, 4)
            target_labels = box_labels.gather(1, index)[positive]  # (P,)
        onehot = F.one_hot(target_labels, c.num_classes).float()
        loss_cls = F.binary_cross_entropy_with_logits(cls[positive], onehot, reduction="sum") / num_pos
        points = out["points"].float().expand(positive.shape[0], -1, -1)[positive]  # (P, 2)
        strides = out["strides"].expand(positive.shape[0], -1)[positive]  # (P,)
        predicted = decode_ltrb(points, ltrb[positive], strides)
        loss_box = (1 - generalized_iou(predicted, target_boxes)).sum() / num_pos
        total = c.obj_weight * loss_obj + c.cls_weight * loss_cls + c.box_weight * loss_box
        return {"loss": total, "loss_obj": loss_obj, "loss_cls": loss_cls, "loss_box": loss_box,
                "num_positive": positive.sum().float()}

    @torch.no_grad()
    def detect(self, pixels: torch.Tensor, score_threshold: float = 0.05, iou_threshold: float = 0.5,
               max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        """Detections per image (call ``eval()`` first): score = sigmoid(obj) * sigmoid(cls), kept above
        ``score_threshold``, NMS per class at ``iou_threshold``, at most ``max_detections`` by decreasing
        score. Returns ``{"boxes" (D, 4) float32 xyxy clipped to the image, "scores" (D,), "labels" (D,) int64}``."""
        out = self(pixels)
        height, width = pixels.shape[-2:]
        boxes = clip_boxes(decode_ltrb(out["points"], out["ltrb"], out["strides"]), height, width)  # (B, N, 4)
        scores = torch.sigmoid(out["obj"])[..., None] * torch.sigmoid(out["cls"])  # (B, N, K)
        return [select_detections(boxes[i], scores[i], score_threshold, iou_threshold, max_detections,
                                  self.config.pre_nms_top_k) for i in range(pixels.shape[0])]


register_family("detector-yolo", YoloConfig, YoloDetector)


@register_model("yolo-tiny")
def yolo_tiny() -> YoloConfig:
    """For 1-channel 64x64 scene canvases with 10 classes: strides 4 and 8, split at 16-pixel boxes."""
    return YoloConfig(in_channels=1, num_classes=10, widths=(8, 16, 32, 64), strides=(4, 8), level_limits=(16.0,),
                      head_width=32)
