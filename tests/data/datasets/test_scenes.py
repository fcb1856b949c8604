"""The scene composer: boxes are exactly the pasted foreground, masks match it pixel for pixel, seeds fix scenes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fromzero.config import from_dict
from fromzero.data.datasets.image_sources import ImageDataConfig
from fromzero.data.datasets.scenes import SceneConfig, compose_scenes, load_scenes
from fromzero.data.image_set import ImageSet
from fromzero.errors import ConfigError

FASHION = Path("/usr/share/datasets/fashion-mnist")
HAVE_FASHION = (FASHION / "t10k-images-idx3-ubyte.gz").is_file()
if not HAVE_FASHION and os.environ.get("CI") == "true":
    pytest.fail("CI must have Fashion-MNIST: apt-get install dataset-fashion-mnist", pytrace=False)
needs_fashion = pytest.mark.skipif(not HAVE_FASHION,
                                   reason="Fashion-MNIST absent: apt-get install dataset-fashion-mnist")


def synthetic_items(n: int, seed: int = 0, flat: bool = False) -> ImageSet:
    """n 28x28 items, class i for item i: a filled ellipse of random grey levels (30..255; ``flat``: all 30 + i,
    so a pixel's value names its item) on a background sprinkled with faint pixels (1..9, below the default
    threshold, so never pasted)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    images = np.zeros((n, 1, 28, 28), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(9, 19, 2)
        ry, rx = rng.uniform(4, 9, 2)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        faint = rng.integers(1, 10, (28, 28)) * (rng.random((28, 28)) < 0.1)
        images[i, 0] = np.where(inside, 30 + i if flat else rng.integers(30, 256, (28, 28)), faint)
    return ImageSet(torch.from_numpy(images), [f"c{i}" for i in range(n)], torch.arange(n))


def test_boxes_are_exactly_each_items_visible_pixels() -> None:
    # unscaled items of one grey level each (30 + class): every pixel says which item is visible there
    cfg = SceneConfig(canvas=48, min_items=2, max_items=4, min_scale=1.0, max_scale=1.0, max_overlap=0.3,
                      min_visible=0.4)
    items = synthetic_items(200, flat=True)
    full = (items.images[:, 0] > cfg.threshold).sum((1, 2))  # (200,) pixels of each whole item
    scenes = compose_scenes(items, 60, cfg, seed=3)
    checked = occluded = 0
    for i in range(len(scenes)):
        image, mask = scenes.images[i, 0], scenes.masks[i]
        assert torch.equal(mask > 0, image > cfg.threshold)  # only the foreground is pasted, all of it labelled
        fg = mask > 0
        assert torch.equal(mask[fg], image[fg].long() - 30 + 1)  # the mask names the item drawn on top
        labels = scenes.box_labels[i].tolist()
        covered = torch.zeros_like(mask, dtype=torch.bool)
        for box, label in zip(scenes.boxes[i], labels, strict=True):
            x1, y1, x2, y2 = (int(v) for v in box)
            assert torch.equal(box, box.round()) and 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 48
            covered[y1:y2, x1:x2] |= mask[y1:y2, x1:x2] == label + 1
            if labels.count(label) == 1:  # one item of this class: its class marks exactly its pixels
                rows, cols = torch.nonzero(mask == label + 1, as_tuple=True)
                assert [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1] == [x1, y1, x2, y2]
                checked += 1
                occluded += int(len(rows) < full[label])
        assert torch.equal(covered, mask > 0)  # no labelled pixel lies outside its class's boxes
    assert checked >= 100 and occluded >= 5  # many items checked, some of them partly covered by later ones
    counts = [len(b) for b in scenes.boxes]
    assert min(counts) >= 1 and max(counts) == 4


def test_one_item_scene_equals_a_naive_paste() -> None:
    items = synthetic_items(1, seed=7)
    for scale, side in ((1.0, 28), (0.75, 21)):
        cfg = SceneConfig(canvas=40, min_items=1, max_items=1, min_scale=scale, max_scale=scale)
        scenes = compose_scenes(items, 5, cfg, seed=11)
        patch = torch.from_numpy(np.array(Image.fromarray(items.images[0, 0].numpy()).resize(
            (side, side), Image.Resampling.BILINEAR)))  # the resize the composer documents: Pillow's bilinear
        fg = [(r, c) for r in range(side) for c in range(side) if patch[r, c] > cfg.threshold]
        rmin, cmin = min(r for r, _ in fg), min(c for _, c in fg)
        for i in range(len(scenes)):
            x1, y1, x2, y2 = (int(v) for v in scenes.boxes[i][0])
            image = torch.zeros(40, 40, dtype=torch.uint8)
            mask = torch.zeros(40, 40, dtype=torch.int64)
            for r, c in fg:  # paste pixel by pixel at the box's corner
                image[y1 + r - rmin, x1 + c - cmin] = patch[r, c]
                mask[y1 + r - rmin, x1 + c - cmin] = 1
            assert torch.equal(scenes.images[i, 0], image) and torch.equal(scenes.masks[i], mask)
            assert (x2 - x1, y2 - y1) == (max(c for _, c in fg) - cmin + 1, max(r for r, _ in fg) - rmin + 1)
            assert scenes.box_labels[i].tolist() == [0]


def test_boxes_of_one_scene_respect_max_overlap() -> None:
    cfg = SceneConfig(canvas=64, min_items=4, max_items=4, max_overlap=0.0)
    scenes = compose_scenes(synthetic_items(50), 30, cfg, seed=0)
    for i in range(len(scenes)):
        boxes = scenes.boxes[i]
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):  # with no overlap allowed, boxes share no pixel
                w = min(boxes[a, 2], boxes[b, 2]) - max(boxes[a, 0], boxes[b, 0])
                h = min(boxes[a, 3], boxes[b, 3]) - max(boxes[a, 1], boxes[b, 1])
                assert w <= 0 or h <= 0


def test_same_seed_same_scenes_other_seed_different() -> None:
    items, cfg = synthetic_items(40), SceneConfig(canvas=48)
    a, b, c = (compose_scenes(items, 12, cfg, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes, strict=True))
    assert not torch.equal(a.images, c.images)


def test_scene_options_are_validated_with_their_key() -> None:
    with pytest.raises(ConfigError, match=r"r\.yaml: data\.scenes\.max_scale: .*larger than the 32-pixel canvas"):
        from_dict(ImageDataConfig, {"source": "scenes", "scenes": {"canvas": 32, "max_scale": 1.5}}, file="r.yaml",
                  prefix="data")
    with pytest.raises(ConfigError, match=r"data\.scenes\.max_items: 1 is below min_items=2"):
        from_dict(ImageDataConfig, {"scenes": {"min_items": 2, "max_items": 1}}, prefix="data")


@needs_fashion
def test_load_scenes_from_fashion_mnist() -> None:
    cfg = SceneConfig(n_train=20, n_validation=5, n_test=8)
    splits = load_scenes(cfg, seed=0)
    assert [len(s) for s in (splits.train, splits.validation, splits.test)] == [20, 5, 8]
    for s in (splits.train, splits.validation, splits.test):
        assert s.size == (64, 64) and s.channels == 1 and s.class_names[0] == "T-shirt/top"
        assert torch.equal(s.masks > 0, s.images[:, 0] > cfg.threshold)
        assert int(s.masks.max()) <= 10
