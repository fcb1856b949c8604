"""Augmentations against hand-computed boxes and against the pixels of pasted rectangles."""

from __future__ import annotations

import pytest
import torch

from fromzero.config import from_dict
from fromzero.data.image_augment import (
    IGNORE_MASK,
    AugmentConfig,
    augment,
    color_jitter,
    mix_batch,
    random_crop,
    random_flip,
)
from fromzero.errors import ConfigError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _white_box_images(boxes: list[list[int]], h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Black images, each with a white rectangle at its integer box, and masks = 1 on the rectangle."""
    images = torch.zeros(len(boxes), 1, h, w)
    masks = torch.zeros(len(boxes), h, w, dtype=torch.long)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        images[i, :, y1:y2, x1:x2] = 1.0
        masks[i, y1:y2, x1:x2] = 1
    return images, masks


def _pixel_box(region: torch.Tensor) -> list[float] | None:
    """xyxy bounds of the True pixels of a (H, W) map, None when there are none."""
    ys, xs = region.nonzero(as_tuple=True)
    if len(ys) == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_hflip_boxes_by_hand_and_masks_follow() -> None:
    images, masks = _white_box_images([[1, 2, 4, 6]], h=8, w=10)
    boxes = [torch.tensor([[1.0, 2.0, 4.0, 6.0], [0.0, 0.0, 10.0, 1.0]])]
    out, out_boxes, out_masks = random_flip(images, 1.0, _gen(), boxes=boxes, masks=masks)
    # x' = W - x: [1, 4] -> [10 - 4, 10 - 1] = [6, 9]; the full-width box stays full width
    assert out_boxes[0].tolist() == [[6.0, 2.0, 9.0, 6.0], [0.0, 0.0, 10.0, 1.0]]
    assert _pixel_box(out[0, 0] > 0.5) == [6.0, 2.0, 9.0, 6.0]
    assert torch.equal(out_masks[0], out[0, 0].long())
    assert boxes[0][0].tolist() == [1.0, 2.0, 4.0, 6.0]  # the input is not modified
    out, out_boxes, _ = random_flip(images, 1.0, _gen(), vertical=True, boxes=boxes, masks=masks)
    assert out_boxes[0][0].tolist() == [1.0, 2.0, 4.0, 6.0]  # y' = 8 - y: [2, 6] -> [2, 6] (symmetric)
    assert out_boxes[0][1].tolist() == [0.0, 7.0, 10.0, 8.0]
    same, same_boxes, _ = random_flip(images, 0.0, _gen(), boxes=boxes)
    assert torch.equal(same, images) and torch.equal(same_boxes[0], boxes[0])


def test_random_crop_keeps_boxes_on_the_white_pixels() -> None:
    gen = _gen(3)
    rects = [[0, 0, 3, 3], [9, 9, 12, 12], [4, 5, 8, 7], [10, 0, 12, 2]] * 8  # corners leave the crop often
    images, masks = _white_box_images(rects, h=12, w=12)
    boxes = [torch.tensor([r], dtype=torch.float32) for r in rects]
    labels = [torch.tensor([i]) for i in range(len(rects))]
    dropped = 0
    for _ in range(5):
        out, out_boxes, out_labels, out_masks = random_crop(images, 4, gen, boxes=boxes, labels=labels, masks=masks)
        for i in range(len(rects)):
            seen = _pixel_box(out[i, 0] > 0.5)
            if seen is None:
                assert out_boxes[i].shape == (0, 4) and out_labels[i].shape == (0,)
                dropped += 1
            else:
                assert out_boxes[i].tolist() == [seen] and out_labels[i].tolist() == [i]
            assert torch.equal(out_masks[i] == 1, out[i, 0] > 0.5)  # mask moved with the pixels
            padding = out_masks[i] == IGNORE_MASK  # padding is ignore in the mask and black in the image
            assert (out[i, 0][padding] == 0).all()
    assert dropped > 0  # the corner boxes did leave the crop sometimes


def test_reflect_crop_keeps_shapes() -> None:
    images, masks = _white_box_images([[1, 1, 3, 3]] * 4, h=6, w=6)
    out, _, _, out_masks = random_crop(images, 2, _gen(), pad_mode="reflect", masks=masks)
    assert out.shape == images.shape and out_masks.dtype == torch.long
    assert torch.equal(out_masks == 1, out[:, 0] > 0.5) and not (out_masks == IGNORE_MASK).any()


def test_mixup_lambda_and_labels() -> None:
    b = 4000
    values = torch.rand(b)  # image i is constant values[i]; its label is i
    images = values[:, None, None, None].expand(b, 1, 2, 2).clone()
    labels = torch.arange(b)
    alpha = 0.4
    out, labels_b, lam = mix_batch(images, labels, AugmentConfig(mixup_alpha=alpha), _gen(1))
    expected = lam * values + (1 - lam) * values[labels_b]
    assert torch.allclose(out[:, 0, 0, 0], expected, atol=1e-6)
    assert lam.dtype == torch.float32 and labels_b.dtype == torch.long
    assert (labels_b != labels).float().mean() > 0.99  # mixed with another image (a random permutation)
    var = 1 / (4 * (2 * alpha + 1))  # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    assert abs(float(lam.mean()) - 0.5) < 0.02 and abs(float(lam.var()) - var) < 0.01
    _, labels_b, lam = mix_batch(images, labels, AugmentConfig(mixup_alpha=alpha, mix_prob=0.0), _gen(1))
    assert (lam == 1).all() and torch.equal(labels_b, labels)


def test_cutmix_lambda_is_the_pasted_area() -> None:
    b = 64
    images = torch.arange(b, dtype=torch.float32)[:, None, None, None].expand(b, 3, 9, 7).clone()
    labels = torch.arange(b)
    out, labels_b, lam = mix_batch(images, labels, AugmentConfig(cutmix_alpha=1.0), _gen(2))
    for i in range(b):
        own = (out[i, 0] == i).float().mean()
        pasted = (out[i, 0] == float(labels_b[i])).float().mean() if labels_b[i] != i else 0.0
        assert abs(float(own) - float(lam[i])) < 1e-6 and abs(float(own + pasted) - 1) < 1e-6
    assert (lam < 1).sum() > b // 2


def test_jitter_changes_pixels_only() -> None:
    images = torch.full((50, 3, 4, 4), 0.4)
    out = color_jitter(images, 0.5, _gen())
    ratio = out[:, 0, 0, 0] / 0.4  # a constant image has no contrast: only brightness acts
    assert ((ratio >= 0.5 - 1e-6) & (ratio <= 1.5 + 1e-6)).all() and ratio.std() > 0.1
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out))
    boxes = [torch.tensor([[1.0, 1.0, 3.0, 3.0]])] * 50
    labels = [torch.tensor([0])] * 50
    _, out_boxes, _, _ = augment(images, AugmentConfig(jitter=0.5), _gen(), boxes=boxes, box_labels=labels)
    assert out_boxes is boxes


def test_augment_config_validation() -> None:
    for kwargs in ({"hflip": 1.5}, {"crop_padding": -1}, {"jitter": 1.0}, {"mixup_alpha": -0.1}, {"mix_prob": 2.0}):
        with pytest.raises(ConfigError):
            AugmentConfig(**kwargs)
    with pytest.raises(ConfigError, match="augment.pad_mode"):
        from_dict(AugmentConfig, {"pad_mode": "mirror"}, prefix="augment")
    assert AugmentConfig(cutmix_alpha=1.0).mixes and not AugmentConfig().mixes
