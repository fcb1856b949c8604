"""Denoising photos: a split by photo (test photos never trained on), grid crops and centre crops checked against
the photos themselves, and the wavelet baseline improving PSNR on a noisy held-out crop."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import peak_signal_noise_ratio

from fromzero.data.datasets.image_sources import ImageDataConfig, load_image_data
from fromzero.data.datasets.photos import (
    TEST_PHOTOS,
    TRAIN_PHOTOS,
    VALIDATION_PHOTOS,
    PhotoConfig,
    load_photos,
    read_photo,
    wavelet_baseline,
)
from fromzero.errors import ConfigError


def test_photo_split_is_disjoint_down_to_the_pixels() -> None:
    names = [*TRAIN_PHOTOS, *VALIDATION_PHOTOS, *TEST_PHOTOS]
    assert len(set(names)) == len(names) and len(TEST_PHOTOS) >= 2 and VALIDATION_PHOTOS
    photos = {n: read_photo(n) for n in names}
    assert all(p.dtype == np.uint8 and p.ndim == 2 for p in photos.values())
    for held in (*VALIDATION_PHOTOS, *TEST_PHOTOS):  # no held-out photo is a training photo under another name
        assert not any(photos[held].shape == photos[t].shape and np.array_equal(photos[held], photos[t])
                       for t in TRAIN_PHOTOS)


def test_crops_come_from_the_right_photos() -> None:
    patch = 64
    splits = load_photos(patch=patch, test_size=128, seed=5)
    camera = skimage.data.camera()  # 512x512 grayscale: the centre 128 crop starts at 192
    assert torch.equal(splits.test.images[0, 0], torch.from_numpy(camera[192:320, 192:320]))
    assert splits.validation.images.shape == (len(VALIDATION_PHOTOS), 1, 128, 128) and splits.test.class_names == []
    start = 0
    for name in TRAIN_PHOTOS:  # the crops of each photo lie on one grid of step `patch` from a corner in [0, patch)
        photo = read_photo(name)
        h, w = photo.shape
        first = splits.train.images[start, 0].numpy()
        y0, x0 = next((y, x) for y in range(min(patch, h - patch + 1)) for x in range(min(patch, w - patch + 1))
                      if np.array_equal(photo[y:y + patch, x:x + patch], first))
        grid = [(y, x) for y in range(y0, h - patch + 1, patch) for x in range(x0, w - patch + 1, patch)]
        for j, (y, x) in enumerate(grid):
            assert np.array_equal(splits.train.images[start + j, 0].numpy(), photo[y:y + patch, x:x + patch])
        start += len(grid)
    assert start == len(splits.train)


def test_seed_moves_the_training_grid() -> None:
    a, b, c = load_photos(48, 64, seed=0), load_photos(48, 64, seed=0), load_photos(48, 64, seed=1)
    assert torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images[:10], c.train.images[:10])
    assert torch.equal(a.test.images, c.test.images)  # the held-out crops do not depend on the seed


def test_photos_through_the_data_section() -> None:
    splits = load_image_data(ImageDataConfig(source="photos", photos=PhotoConfig(patch=32, test_size=64),
                                             limit_train=100), seed=0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (100, 2, 2)
    assert splits.train.size == (32, 32) and splits.test.size == (64, 64)
    with pytest.raises(ConfigError, match="test_size"):
        PhotoConfig(test_size=400)


def test_wavelet_baseline_improves_psnr_on_a_noisy_test_crop() -> None:
    clean = load_photos(48, 128, seed=0).test.images[:, 0].numpy() / 255.0  # (2, 128, 128)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0.0, 25 / 255, clean.shape), 0.0, 1.0)
    denoised = wavelet_baseline(noisy)
    assert denoised.shape == noisy.shape and denoised.min() >= 0.0 and denoised.max() <= 1.0
    for i in range(len(clean)):
        before = peak_signal_noise_ratio(clean[i], noisy[i], data_range=1.0)
        after = peak_signal_noise_ratio(clean[i], denoised[i], data_range=1.0)
        assert after > before + 2.0, (TEST_PHOTOS[i], before, after)
    assert np.array_equal(wavelet_baseline(noisy[0]), denoised[0])  # one (H, W) plane alone gives the same
