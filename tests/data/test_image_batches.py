"""Image batches: pure functions of (step, micro), epoch coverage, evaluation order, noise statistics, keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fromzero.data.image_augment import AugmentConfig
from fromzero.data.image_batches import ImageBatches, NoiseConfig, add_noise, channel_stats
from fromzero.data.image_set import ImageSet
from fromzero.errors import ConfigError, DataError


def _indexed(n: int, c: int = 1, side: int = 4, seed: int = 0) -> ImageSet:
    """n random images whose label is their index (so a batch's labels name its images)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, side, side), dtype=torch.uint8, generator=g)
    return ImageSet(images, [str(i) for i in range(n)], labels=torch.arange(n))


def test_channel_stats_match_numpy() -> None:
    data = _indexed(30, c=3, side=5)
    mean, std = channel_stats(data, chunk=7)
    x = data.images.numpy().astype(np.float64) / 255
    assert np.allclose(mean, x.mean(axis=(0, 2, 3))) and np.allclose(std, x.std(axis=(0, 2, 3)))
    flat = ImageSet(torch.full((2, 1, 3, 3), 9, dtype=torch.uint8), ["a"], labels=torch.zeros(2, dtype=torch.long))
    assert channel_stats(flat)[1] == [1.0]


def test_training_batches_are_pure_and_vary() -> None:
    data = _indexed(20, c=3, side=8)
    aug = AugmentConfig(hflip=0.5, crop_padding=2, jitter=0.3, mixup_alpha=0.4, cutmix_alpha=1.0)
    src = ImageBatches(data, "image_classification", 6, seed=5, shuffle=True, grad_accum=2, augment=aug)
    first = src.batch(7, 1)
    assert set(first) == {"pixels", "labels", "labels_b", "mix_lambda"}
    assert first["pixels"].shape == (6, 3, 8, 8) and first["pixels"].dtype == torch.float32
    fresh = ImageBatches(data, "image_classification", 6, seed=5, shuffle=True, grad_accum=2, augment=aug)
    for _ in range(3):  # whatever was asked before, and from a fresh object (a resumed run)
        src.batch(3, 0)
        for key, value in src.batch(7, 1).items():
            assert torch.equal(value, first[key]) and torch.equal(fresh.batch(7, 1)[key], value)
    assert not torch.equal(src.batch(8, 1)["pixels"], first["pixels"])
    assert not torch.equal(src.batch(7, 0)["labels"], first["labels"])
    other_seed = ImageBatches(data, "image_classification", 6, seed=6, shuffle=True, grad_accum=2, augment=aug)
    assert not torch.equal(other_seed.batch(7, 1)["labels"], first["labels"])


def test_every_image_once_per_epoch() -> None:
    n, b, accum = 10, 3, 2
    src = ImageBatches(_indexed(n), "image_classification", b, seed=1, shuffle=True, grad_accum=accum)
    stream = []
    for step in range(5):  # 5 steps x 2 micro x 3 = 30 positions = 3 epochs
        for micro in range(accum):
            stream += src.batch(step, micro)["labels"].tolist()
    epochs = [stream[i:i + n] for i in range(0, 3 * n, n)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert epochs[0] != epochs[1] and epochs[0] != list(range(n))  # reshuffled each epoch
    assert len(src) == 4


def test_eval_batches_cover_the_set_in_order_and_normalise() -> None:
    data = _indexed(10, c=2)
    mean, std = [0.3, 0.6], [0.2, 0.1]
    src = ImageBatches(data, "image_classification", 4, mean=mean, std=std,
                       augment=AugmentConfig(hflip=1.0))  # augmentation is for training only
    assert len(src) == 3
    seen = [src.batch(i)["labels"].tolist() for i in range(len(src))]
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    pixels = src.batch(2)["pixels"]
    x = data.images[8:].double() / 255
    expected = (x - torch.tensor(mean, dtype=torch.float64).view(1, 2, 1, 1)) / torch.tensor(std).view(1, 2, 1, 1)
    assert torch.allclose(pixels.double(), expected, atol=1e-5)
    assert torch.equal(src.batch(3)["labels"], src.batch(0)["labels"])  # past the end it wraps


def _gray(n: int, value: int = 128, side: int = 16) -> ImageSet:
    return ImageSet(torch.full((n, 1, side, side), value, dtype=torch.uint8), ["x"])


def test_denoising_noise_statistics() -> None:
    src = ImageBatches(_gray(16), "denoising", 16, shuffle=True, noise=NoiseConfig(sigma=25.0))
    batch = src.batch(0)
    assert set(batch) == {"pixels", "target"}
    assert torch.allclose(batch["target"], torch.full_like(batch["target"], 128 / 255))
    residual = batch["pixels"] - batch["target"]
    assert abs(float(residual.std()) - 25 / 255) < 0.05 * 25 / 255 and abs(float(residual.mean())) < 0.005
    assert not torch.equal(src.batch(1)["pixels"], batch["pixels"])
    clean = torch.full((200_000,), 0.25)
    shot = add_noise(clean, NoiseConfig(kind="poisson", peak=30.0, clip=False), torch.Generator().manual_seed(0))
    assert abs(float(shot.mean()) - 0.25) < 0.005
    assert abs(float(shot.var()) - 0.25 / 30) < 0.0005  # Poisson counts: var(k / peak) = x / peak
    cropped = ImageBatches(_gray(4), "denoising", 4, shuffle=True, crop=8).batch(0)
    assert cropped["pixels"].shape == (4, 1, 8, 8) == cropped["target"].shape


def test_denoising_eval_noise_is_fixed_per_image() -> None:
    data = _gray(7)
    by4 = ImageBatches(data, "denoising", 4, seed=1)
    by3 = ImageBatches(data, "denoising", 3, seed=2)
    rows4 = torch.cat([by4.batch(i)["pixels"] for i in range(len(by4))])
    rows3 = torch.cat([by3.batch(i)["pixels"] for i in range(len(by3))])
    assert torch.equal(rows4, rows3) and torch.equal(by4.batch(0)["pixels"], rows4[:4])
    assert not torch.equal(rows4[0], rows4[1])  # different images get different noise


def test_detection_segmentation_mae_keys() -> None:
    images = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    boxes = [torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 5.0, 5.0]]), torch.zeros(0, 4),
             torch.tensor([[2.0, 3.0, 4.0, 5.0]])]
    labels = [torch.tensor([1, 0]), torch.zeros(0, dtype=torch.long), torch.tensor([1])]
    masks = torch.randint(0, 3, (3, 8, 8))
    data = ImageSet(images, ["a", "b"], boxes=boxes, box_labels=labels, masks=masks)
    det = ImageBatches(data, "detection", 3).batch(0)
    assert det["boxes"].shape == (3, 2, 4) and det["box_labels"].tolist() == [[1, 0], [-1, -1], [1, -1]]
    assert torch.equal(det["boxes"][2, 0], boxes[2][0]) and (det["boxes"][1] == 0).all()
    assert ImageBatches(data.subset(torch.tensor([1])), "detection", 1).batch(0)["boxes"].shape == (1, 1, 4)
    flipped = ImageBatches(data, "detection", 3, shuffle=True, augment=AugmentConfig(hflip=1.0)).batch(0)
    assert {tuple(r) for r in flipped["boxes"].reshape(-1, 4).tolist()} >= {(6.0, 0.0, 8.0, 2.0), (4.0, 3.0, 6.0, 5.0)}
    seg = ImageBatches(data, "segmentation", 2).batch(1)
    assert set(seg) == {"pixels", "masks"} and torch.equal(seg["masks"], masks[2:])
    mae = ImageBatches(data, "mae", 2, patch=4)
    noise = mae.batch(0)["mask_noise"]
    assert noise.shape == (2, 4) and noise.dtype == torch.float32 and 0 <= float(noise.min()) < 1
    assert torch.equal(noise, mae.batch(0)["mask_noise"])
    train = ImageBatches(data, "mae", 2, patch=4, shuffle=True)
    assert not torch.equal(train.batch(0)["mask_noise"], train.batch(1)["mask_noise"])


def test_task_errors() -> None:
    data = _gray(4, side=8)
    with pytest.raises(DataError, match="class labels"):
        ImageBatches(data, "image_classification", 2)
    with pytest.raises(ConfigError, match="image_classification only"):
        ImageBatches(data, "denoising", 2, shuffle=True, augment=AugmentConfig(mixup_alpha=0.2))
    with pytest.raises(ConfigError, match="patch"):
        ImageBatches(data, "mae", 2, patch=3)
    with pytest.raises(ConfigError, match="crop"):
        ImageBatches(data, "denoising", 2, crop=9)
    with pytest.raises(ConfigError, match="not an image task"):
        ImageBatches(data, "captioning", 2)
    with pytest.raises(ConfigError, match="one value per channel"):
        ImageBatches(data, "mae", 2, patch=4, mean=[0.5, 0.5], std=[1.0, 1.0])
