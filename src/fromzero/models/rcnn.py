"""A two-stage detector (Faster R-CNN style): backbone, region proposal network, RoIAlign, box head, in one file.

    F = backbone(pixels)                     one map at stride 2^(len(widths)-1) (ConvBNAct + BasicBlocks)
    RPN: h = relu(conv3x3(F)); per location and anchor a: objectness logit, deltas (dx, dy, dw, dh)
    proposals = NMS(top-k(decode(anchors, deltas)))        decoded, clipped, tiny ones removed
    box head: RoIAlign(F, proposal) -> FC -> FC -> K+1 class logits (index K = background)
                                              and class-specific deltas (K, 4)

Anchors sit at cell centres ((j + 0.5) s, (i + 0.5) s), one per (size, aspect ratio h/w), with
w = size / sqrt(ratio), h = size * sqrt(ratio). Deltas use ``nn.box_coder`` (R-CNN's encoding) with
weights (1, 1, 1, 1) in the RPN and ``box_weights`` (Detectron: (10, 10, 5, 5)) in the head.

Training (Ren et al. 2015, https://arxiv.org/abs/1506.01497, sec. 3.1.2 and 3.3; Fast R-CNN,
https://arxiv.org/abs/1504.08083, sec. 2.3):

* anchors: positive at IoU >= ``rpn_fg_iou`` with some box, or when they are a box's best anchor
  (ties included, IoU > 0); negative at max IoU < ``rpn_bg_iou``; the rest ignored. ``rpn_batch``
  anchors per image are sampled, at most ``rpn_pos_fraction`` of them positive.
* proposals (detached) get the ground-truth boxes added; a proposal is foreground at IoU >= ``roi_fg_iou``
  (class of its best box), background below ``roi_bg_iou``; ``roi_batch`` per image, at most
  ``roi_pos_fraction`` foreground.
* losses: BCE objectness and smooth-L1 (beta 1/9, py-faster-rcnn's sigma = 3) on positive anchors'
  deltas, both summed and divided by the sampled anchors; cross-entropy over the sampled RoIs and
  smooth-L1 (beta 1) on foreground RoIs' deltas of their class, divided by the sampled RoIs.

Sampling randomness: each :meth:`FasterRCNN.loss` call draws one seed from the *global* torch CPU RNG
and samples with a ``torch.Generator`` seeded by it, so a run is reproducible from its seed and the
Trainer's RNG restore on resume continues the exact sequence.
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
from fromzero.nn.box_coder import clip_boxes, decode_deltas, encode_deltas, select_detections
from fromzero.nn.boxes import box_iou, nms, roi_align
from fromzero.nn.conv import ACTIVATIONS, ConvBNAct, downsample_stage, init_conv_weights

RPN_BETA = 1.0 / 9  # smooth-L1 transition of the RPN box loss (py-faster-rcnn rpn sigma = 3)
ROI_BETA = 1.0  # smooth-L1 transition of the box-head loss (sigma = 1)


@dataclass(frozen=True)
class RcnnConfig:
    """Shape and training choices of the two-stage detector. Validated on construction."""

    in_channels: int = field(1, help="image channels (1 grayscale, 3 RGB)")
    num_classes: int = field(10, help="object classes (the head adds a background class)")
    widths: tuple[int, ...] = field((8, 16, 32), help="channels of the stride-1 stem, then of each stride-2 "
                                    "stage; the feature stride is 2^(len(widths) - 1)")
    blocks: int = field(1, help="BasicBlocks after each stage's strided conv")
    act: str = field("relu", help="activation of the backbone convs: relu | silu | gelu")
    anchor_sizes: tuple[float, ...] = field((12.0, 20.0, 32.0), help="anchor sizes, sqrt(w*h) in pixels")
    aspect_ratios: tuple[float, ...] = field((0.5, 1.0, 2.0), help="anchor aspect ratios h / w")
    rpn_fg_iou: float = field(0.7, help="anchors at IoU >= this with a box are positive")
    rpn_bg_iou: float = field(0.3, help="anchors with max IoU < this are negative")
    rpn_batch: int = field(256, help="anchors sampled per image for the RPN loss")
    rpn_pos_fraction: float = field(0.5, help="largest share of positives among sampled anchors")
    rpn_nms_iou: float = field(0.7, help="NMS threshold among proposals")
    rpn_pre_nms_train: int = field(300, help="top-scoring anchors decoded per image before NMS (training)")
    rpn_post_nms_train: int = field(100, help="proposals kept per image after NMS (training)")
    rpn_pre_nms_test: int = field(150, help="top-scoring anchors decoded per image before NMS (detect)")
    rpn_post_nms_test: int = field(50, help="proposals kept per image after NMS (detect)")
    min_size: float = field(1.0, help="proposals narrower or lower than this (pixels) are removed")
    roi_size: int = field(7, help="RoIAlign output grid (roi_size x roi_size)")
    sampling_ratio: int = field(1, help="RoIAlign samples per bin and axis (<= 0: adaptive, ceil(bin size)); "
                                "1 suffices while bins are at most a cell (boxes up to roi_size * stride pixels)")
    fc_width: int = field(128, help="width of the box head's two FC layers")
    roi_batch: int = field(64, help="RoIs sampled per image for the head loss (the paper: 128 of 2 images)")
    roi_pos_fraction: float = field(0.25, help="largest share of foreground among sampled RoIs")
    roi_fg_iou: float = field(0.5, help="RoIs at IoU >= this with a box are foreground")
    roi_bg_iou: float = field(0.5, help="RoIs with max IoU < this are background")
    box_weights: tuple[float, ...] = field((10.0, 10.0, 5.0, 5.0), help="(wx, wy, ww, wh) of the head's deltas")

    def __post_init__(self) -> None:
        require_image_io(self.in_channels, self.num_classes, 1)
        require(len(self.widths) >= 2 and all(w > 0 for w in self.widths), "widths",
                f"needs a stem and at least one stage, all positive, got {list(self.widths)}")
        require(self.blocks >= 0, "blocks", f"must be >= 0, got {self.blocks}")
        require(self.act in ACTIVATIONS and self.act != "none", "act",
                f"unknown activation {self.act!r}; choose relu, silu or gelu")
        require(len(self.anchor_sizes) > 0 and all(s > 0 for s in self.anchor_sizes), "anchor_sizes",
                f"must be positive sizes, got {list(self.anchor_sizes)}")
        require(len(self.aspect_ratios) > 0 and all(r > 0 for r in self.aspect_ratios), "aspect_ratios",
                f"must be positive ratios, got {list(self.aspect_ratios)}")
        require(0 < self.rpn_bg_iou <= self.rpn_fg_iou <= 1, "rpn_fg_iou",
                f"need 0 < rpn_bg_iou <= rpn_fg_iou <= 1, got {self.rpn_bg_iou} and {self.rpn_fg_iou}")
        require(0 < self.roi_bg_iou <= self.roi_fg_iou <= 1, "roi_fg_iou",
                f"need 0 < roi_bg_iou <= roi_fg_iou <= 1, got {self.roi_bg_iou} and {self.roi_fg_iou}")
        for key in ("rpn_pos_fraction", "roi_pos_fraction"):
            require(0 < getattr(self, key) <= 1, key, f"must be in (0, 1], got {getattr(self, key)}")
        require(0 < self.rpn_nms_iou <= 1, "rpn_nms_iou", f"must be in (0, 1], got {self.rpn_nms_iou}")
        for key in ("rpn_batch", "rpn_pre_nms_train", "rpn_post_nms_train", "rpn_pre_nms_test",
                    "rpn_post_nms_test", "roi_size", "fc_width", "roi_batch"):
            require(getattr(self, key) > 0, key, f"must be positive, got {getattr(self, key)}")
        require(self.min_size >= 0, "min_size", f"must be >= 0, got {self.min_size}")
        require(len(self.box_weights) == 4 and all(w > 0 for w in self.box_weights), "box_weights",
                f"needs 4 positive weights (wx, wy, ww, wh), got {list(self.box_weights)}")

    @property
    def stride(self) -> int:
        """Pixels per feature-map cell."""
        return 2 ** (len(self.widths) - 1)


def make_anchors(height: int, width: int, stride: int, sizes: tuple[float, ...], ratios: tuple[float, ...],
                 device: torch.device | None = None) -> torch.Tensor:
    """Anchors of a (height, width) feature map: ``(height * width * A, 4)`` xyxy, location-major
    (row, column), then sizes, then ratios; A = len(sizes) * len(ratios)."""
    shapes = [(s / math.sqrt(r), s * math.sqrt(r)) for s in sizes for r in ratios]  # (w, h) per anchor
    half = torch.tensor([[-w / 2, -h / 2, w / 2, h / 2] for w, h in shapes], device=device)  # (A, 4)
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    centres = (torch.stack([xs, ys, xs, ys], -1).reshape(-1, 1, 4).float() + 0.5) * stride  # (HW, 1, 4)
    return (centres + half[None]).reshape(-1, 4)


def label_anchors(anchors: torch.Tensor, gt: torch.Tensor, fg_iou: float, bg_iou: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Faster R-CNN's anchor labels: ``(A, 4), (M, 4) -> labels (A,)`` in {1 positive, 0 negative, -1 ignored}
    and ``matched (A,)``, the index of each anchor's best box (0 when there are no boxes)."""
    a = anchors.shape[0]
    if gt.shape[0] == 0:
        zeros = torch.zeros(a, dtype=torch.long, device=anchors.device)
        return zeros, zeros.clone()
    iou = box_iou(anchors, gt)  # (A, M)
    best, matched = iou.max(dim=1)
    labels = torch.full((a,), -1, dtype=torch.long, device=anchors.device)
    labels[best < bg_iou] = 0
    labels[best >= fg_iou] = 1
    per_box = iou.max(dim=0).values  # (M,)
    labels[((iou == per_box[None]) & (per_box[None] > 0)).any(dim=1)] = 1  # each box's best anchors
    return labels, matched


def sample_balanced(positive: torch.Tensor, negative: torch.Tensor, total: int, pos_fraction: float,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random indices of at most ``total * pos_fraction`` positives and negatives filling up to ``total``.

    positive, negative: (N,) bool masks -> (indices of sampled positives, of sampled negatives).
    """
    pos, neg = positive.nonzero().squeeze(1), negative.nonzero().squeeze(1)
    n_pos = min(pos.numel(), int(total * pos_fraction))
    n_neg = min(neg.numel(), total - n_pos)
    pos = pos[torch.randperm(pos.numel(), generator=generator)[:n_pos].to(pos.device)]
    neg = neg[torch.randperm(neg.numel(), generator=generator)[:n_neg].to(neg.device)]
    return pos, neg


class FasterRCNN(nn.Module):
    """Two-stage detector. ``forward(pixels)`` -> RPN outputs; :meth:`loss`; :meth:`detect`."""

    def __init__(self, config: RcnnConfig) -> None:
        super().__init__()
        c = self.config = config
        stages = (downsample_stage(a, b, c.blocks, c.act) for a, b in zip(c.widths[:-1], c.widths[1:], strict=True))
        self.backbone = nn.Sequential(ConvBNAct(c.in_channels, c.widths[0], 3, 1, c.act), *stages)
        init_conv_weights(self.backbone)
        feat, k = c.widths[-1], c.num_classes
        self.num_anchors = len(c.anchor_sizes) * len(c.aspect_ratios)
        self.rpn_conv = nn.Conv2d(feat, feat, 3, padding=1)
        self.rpn_obj = nn.Conv2d(feat, self.num_anchors, 1)
        self.rpn_box = nn.Conv2d(feat, self.num_anchors * 4, 1)
        self.fc1 = nn.Linear(feat * c.roi_size * c.roi_size, c.fc_width)
        self.fc2 = nn.Linear(c.fc_width, c.fc_width)
        self.cls_score = nn.Linear(c.fc_width, k + 1)
        self.box_pred = nn.Linear(c.fc_width, k * 4)
        for layer, std in ((self.rpn_conv, 0.01), (self.rpn_obj, 0.01), (self.rpn_box, 0.01),
                           (self.cls_score, 0.01), (self.box_pred, 0.001)):  # the paper's / Detectron's inits
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """pixels (B, C, H, W) -> ``features`` (B, C', h, w), ``rpn_logits`` (B, A_all), ``rpn_deltas``
        (B, A_all, 4) and ``anchors`` (A_all, 4), A_all = h * w * anchors per location."""
        c = self.config
        features = self.backbone(pixels)
        b, _, h, w = features.shape
        hidden = torch.relu(self.rpn_conv(features))
        logits = self.rpn_obj(hidden).permute(0, 2, 3, 1).reshape(b, -1)  # (B, h*w*A)
        deltas = self.rpn_box(hidden).view(b, self.num_anchors, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
        anchors = make_anchors(h, w, c.stride, c.anchor_sizes, c.aspect_ratios, features.device)
        return {"features": features, "rpn_logits": logits, "rpn_deltas": deltas, "anchors": anchors}

    @torch.no_grad()
    def proposals(self, out: dict[str, torch.Tensor], image_size: tuple[int, int], pre_nms: int,
                  post_nms: int) -> list[torch.Tensor]:
        """Per image (P, 4) proposals: the ``pre_nms`` best anchors decoded, clipped, tiny ones removed,
        NMS at ``rpn_nms_iou``, the ``post_nms`` best kept (by decreasing objectness)."""
        c = self.config
        result = []
        for logits, deltas in zip(out["rpn_logits"], out["rpn_deltas"], strict=True):
            top = logits.topk(min(pre_nms, logits.numel())).indices
            boxes = clip_boxes(decode_deltas(out["anchors"][top], deltas[top].float()), *image_size)
            scores = logits[top].float()
            big = ((boxes[:, 2] - boxes[:, 0]) >= c.min_size) & ((boxes[:, 3] - boxes[:, 1]) >= c.min_size)
            boxes, scores = boxes[big], scores[big]
            result.append(boxes[nms(boxes, scores, c.rpn_nms_iou)[:post_nms]])
        return result

    def _box_head(self, features: torch.Tensor, rois: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """RoIs per image (R_i, 4) -> class logits (R, K+1) and class-specific deltas (R, K, 4)."""
        index = torch.cat([torch.full((len(r), 1), float(i), device=features.device) for i, r in enumerate(rois)])
        flat = torch.cat([index, torch.cat(rois).to(features.dtype)], dim=1)  # (R, 5)
        pooled = roi_align(features, flat, self.config.roi_size, 1.0 / self.config.stride,
                           self.config.sampling_ratio)  # (R, C, roi, roi)
        hidden = torch.relu(self.fc2(torch.relu(self.fc1(pooled.flatten(1)))))
        return self.cls_score(hidden), self.box_pred(hidden).view(-1, self.config.num_classes, 4)

    def _rpn_loss(self, out: dict[str, torch.Tensor], gts: list[torch.Tensor],
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Objectness BCE and smooth-L1 box loss over sampled anchors, each divided by the sampled count."""
        c = self.config
        obj = box = out["rpn_logits"].new_zeros((), dtype=torch.float32)
        sampled = 0
        for logits, deltas, gt in zip(out["rpn_logits"].float(), out["rpn_deltas"].float(), gts, strict=True):
            labels, matched = label_anchors(out["anchors"], gt, c.rpn_fg_iou, c.rpn_bg_iou)
            pos, neg = sample_balanced(labels == 1, labels == 0, c.rpn_batch, c.rpn_pos_fraction, generator)
            chosen = torch.cat([pos, neg])
            target = (labels[chosen] == 1).to(logits.dtype)
            obj = obj + F.binary_cross_entropy_with_logits(logits[chosen], target, reduction="sum")
            if pos.numel():
                goal = encode_deltas(out["anchors"][pos], gt[matched[pos]])
                box = box + F.smooth_l1_loss(deltas[pos], goal, beta=RPN_BETA, reduction="sum")
            sampled += chosen.numel()
        return obj / max(sampled, 1), box / max(sampled, 1)

    def _sample_rois(self, proposals: list[torch.Tensor], gts: list[torch.Tensor], gt_labels: list[torch.Tensor],
                     generator: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Sampled RoIs per image, their classes (R,) (K = background), and regression targets (F, 4) of the
        foreground ones (in the order they appear)."""
        c, k = self.config, self.config.num_classes
        rois, classes, targets = [], [], []
        for props, gt, lab in zip(proposals, gts, gt_labels, strict=True):
            props = torch.cat([props, gt.to(props.dtype)])  # the boxes themselves are proposals too
            if gt.shape[0] == 0:
                best = props.new_zeros(props.shape[0])
                matched = torch.zeros(props.shape[0], dtype=torch.long, device=props.device)
            else:
                best, matched = box_iou(props, gt).max(dim=1)
            pos, neg = sample_balanced(best >= c.roi_fg_iou, best < c.roi_bg_iou, c.roi_batch, c.roi_pos_fraction,
                                       generator)
            rois.append(torch.cat([props[pos], props[neg]]))
            classes.append(torch.cat([lab[matched[pos]], torch.full_like(neg, k)]))
            targets.append(encode_deltas(props[pos], gt[matched[pos]], tuple(c.box_weights)))
        return rois, torch.cat(classes), torch.cat(targets)

    def loss(self, pixels: torch.Tensor, boxes: torch.Tensor, box_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """pixels (B, C, H, W); boxes (B, M, 4) xyxy pixels; box_labels (B, M), -1 = padding -> ``loss`` (sum)
        and ``rpn_obj``, ``rpn_box``, ``roi_cls``, ``roi_box`` (module docstring)."""
        c = self.config
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))  # from the global RNG
        out = self(pixels)
        valid = box_labels >= 0
        gts = [b[v].float() for b, v in zip(boxes, valid, strict=True)]
        labels = [lab[v] for lab, v in zip(box_labels, valid, strict=True)]
        rpn_obj, rpn_box = self._rpn_loss(out, gts, generator)
        proposals = self.proposals(out, pixels.shape[-2:], c.rpn_pre_nms_train, c.rpn_post_nms_train)
        rois, classes, targets = self._sample_rois(proposals, gts, labels, generator)
        logits, deltas = self._box_head(out["features"], rois)
        logits, deltas = logits.float(), deltas.float()  # losses in fp32
        count = max(classes.numel(), 1)
        roi_cls = F.cross_entropy(logits, classes, reduction="sum") / count
        fg = classes < c.num_classes
        fg_deltas = deltas[fg.nonzero().squeeze(1), classes[fg]]  # (F, 4): the deltas of each RoI's own class
        roi_box = F.smooth_l1_loss(fg_deltas, targets.to(fg_deltas.dtype), beta=ROI_BETA, reduction="sum") / count
        return {"loss": rpn_obj + rpn_box + roi_cls + roi_box, "rpn_obj": rpn_obj, "rpn_box": rpn_box,
                "roi_cls": roi_cls, "roi_box": roi_box}

    @torch.no_grad()
    def detect(self, pixels: torch.Tensor, score_threshold: float = 0.05, iou_threshold: float = 0.5,
               max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        """Detections per image (call ``eval()`` first): softmax class scores of the test-time proposals,
        class-specific boxes, kept above ``score_threshold``, NMS per class at ``iou_threshold``, at most
        ``max_detections`` by decreasing score. Returns ``{"boxes" (D, 4) float32 xyxy clipped to the image,
        "scores" (D,), "labels" (D,) int64}``."""
        c = self.config
        height, width = pixels.shape[-2:]
        out = self(pixels)
        proposals = self.proposals(out, (height, width), c.rpn_pre_nms_test, c.rpn_post_nms_test)
        logits, deltas = self._box_head(out["features"], proposals)
        probs = torch.softmax(logits.float(), dim=-1)[:, : c.num_classes]  # (R, K), background dropped
        boxes = decode_deltas(torch.cat(proposals)[:, None, :], deltas.float(), tuple(c.box_weights))  # (R, K, 4)
        boxes = clip_boxes(boxes, height, width)
        result, start = [], 0
        for props in proposals:
            end = start + props.shape[0]
            result.append(select_detections(boxes[start:end], probs[start:end], score_threshold, iou_threshold,
                                            max_detections, pre_nms_top_k=max(probs.numel(), 1)))
            start = end
        return result


register_family("detector-rcnn", RcnnConfig, FasterRCNN)


@register_model("rcnn-tiny")
def rcnn_tiny() -> RcnnConfig:
    """For 1-channel 64x64 scene canvases with 10 classes: a stride-4 map, 9 anchors of 12-32 pixels."""
    return RcnnConfig(in_channels=1, num_classes=10, widths=(8, 16, 32), anchor_sizes=(12.0, 20.0, 32.0),
                      aspect_ratios=(0.5, 1.0, 2.0))
