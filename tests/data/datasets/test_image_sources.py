"""Image sources and the data section: Fashion-MNIST and digits against independent readers, seeded stratified
validation / label-fraction / limit picks, folders and COCO files, and one-line errors naming the key."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits as sklearn_digits

from fromzero.config import from_dict
from fromzero.data.datasets.digits import load_digits
from fromzero.data.datasets.fashion_mnist import CLASS_NAMES, load_fashion_mnist
from fromzero.data.datasets.image_sources import ImageDataConfig, load_image_data
from fromzero.data.image_set import ImageSet
from fromzero.errors import ConfigError, DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")
HAVE_FASHION = (FASHION / "train-images-idx3-ubyte.gz").is_file()
if not HAVE_FASHION and os.environ.get("CI") == "true":
    pytest.fail("CI must have Fashion-MNIST: apt-get install dataset-fashion-mnist", pytrace=False)
needs_fashion = pytest.mark.skipif(not HAVE_FASHION,
                                   reason="Fashion-MNIST absent: apt-get install dataset-fashion-mnist")


def _idx(name: str, header: int) -> np.ndarray:
    """An IDX file's values read by hand: skip the fixed-size header, the rest is uint8."""
    return np.frombuffer(gzip.open(FASHION / name).read()[header:], np.uint8)


def per_class(images: ImageSet) -> np.ndarray:
    return np.bincount(images.labels.numpy(), minlength=len(images.class_names))


def keys(images: ImageSet) -> Counter:
    """The images as a multiset of (pixel bytes, label): equal multisets = the same images."""
    labels = images.labels.tolist() if images.labels is not None else [None] * len(images)
    return Counter((x.numpy().tobytes(), y) for x, y in zip(images.images, labels, strict=True))


@needs_fashion
def test_fashion_mnist_equals_the_idx_files_read_by_hand() -> None:
    train, test = load_fashion_mnist()
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.class_names == CLASS_NAMES and CLASS_NAMES[0] == "T-shirt/top" and CLASS_NAMES[9] == "Ankle boot"
    assert np.array_equal(train.images.numpy().ravel(), _idx("train-images-idx3-ubyte.gz", 16))
    assert np.array_equal(test.labels.numpy(), _idx("t10k-labels-idx1-ubyte.gz", 8))
    assert per_class(train).tolist() == [6000] * 10 and per_class(test).tolist() == [1000] * 10  # as published


@needs_fashion
def test_label_fraction_keeps_a_tenth_of_each_class() -> None:
    splits = load_image_data(ImageDataConfig(label_fraction=0.1), seed=0)
    assert per_class(splits.validation).tolist() == [600] * 10  # 10% of 60000, stratified
    assert per_class(splits.train).tolist() == [540] * 10  # 10% of the 5400 per class left
    assert len(splits.test) == 10_000 and not keys(splits.train) & keys(splits.validation)


def test_missing_fashion_files_say_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_image_data(ImageDataConfig(path=str(tmp_path)), seed=0)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message and "data.path" in message


def test_digits_are_sklearns_split_by_class() -> None:
    bunch = sklearn_digits()
    reference = Counter((np.rint(x * 255 / 16).astype(np.uint8)[None].tobytes(), int(y))
                        for x, y in zip(bunch.images, bunch.target, strict=True))
    train, test = load_digits(0.2, seed=0)
    assert len(train) + len(test) == 1797 and train.size == (8, 8)
    assert keys(train) + keys(test) == reference
    expected = 0.2 * np.bincount(bunch.target)
    assert np.all(np.abs(per_class(test) - expected) <= 1)
    assert torch.equal(load_digits(0.2, seed=0)[1].images, test.images)
    assert not torch.equal(load_digits(0.2, seed=1)[1].images, test.images)


def test_validation_is_stratified_and_disjoint_from_train() -> None:
    cfg = ImageDataConfig(source="digits", validation=0.25)
    splits = load_image_data(cfg, seed=3)
    pool, test = load_digits(cfg.test, seed=3)
    assert keys(splits.train) + keys(splits.validation) == keys(pool)  # a partition of the training pool
    assert np.all(np.abs(per_class(splits.validation) - 0.25 * per_class(pool)) <= 1)
    assert torch.equal(splits.test.images, test.images)
    again, other = load_image_data(cfg, seed=3), load_image_data(cfg, seed=4)
    assert torch.equal(again.validation.images, splits.validation.images)
    assert not torch.equal(other.validation.images, splits.validation.images)


def test_label_fraction_and_limits_on_digits() -> None:
    full = load_image_data(ImageDataConfig(source="digits"), seed=0)
    tenth = load_image_data(ImageDataConfig(source="digits", label_fraction=0.1), seed=0)
    assert len(tenth.train) == round(0.1 * len(full.train))
    assert np.all(np.abs(per_class(tenth.train) - 0.1 * per_class(full.train)) <= 1)
    assert not keys(tenth.train) - keys(full.train)  # a subset of the same training split
    small = load_image_data(ImageDataConfig(source="digits", limit_train=200, limit_test=50, channels=3,
                                            image_size=16), seed=0)
    assert (len(small.train), len(small.validation), len(small.test)) == (180, 20, 50)
    assert small.train.images.shape[1:] == (3, 16, 16)
    assert torch.equal(small.train.images[:, 0], small.train.images[:, 2])  # grey copied to every channel
    with pytest.raises(ConfigError, match=r"r\.yaml: data\.label_fraction: cannot pick 6 of .* all 10 classes"):
        load_image_data(ImageDataConfig(source="digits", label_fraction=0.005), seed=0, file="r.yaml")


def test_bad_options_name_their_key() -> None:
    with pytest.raises(ConfigError, match=r"r\.yaml: data\.source: unknown image source 'mnist'; known: "
                                          r"fashion-mnist, digits, scenes, photos, folder, coco"):
        from_dict(ImageDataConfig, {"source": "mnist"}, file="r.yaml", prefix="data")
    for values, key in (({"validation": 1.0}, "validation"), ({"channels": 2}, "channels"),
                        ({"source": "folder"}, "path"), ({"source": "scenes", "image_size": 32}, "image_size"),
                        ({"label_fraction": 0.0}, "label_fraction"), ({"limit_train": 0}, "limit_train"),
                        ({"photos": {"patch": 400}}, "photos.patch")):
        with pytest.raises(ConfigError, match=rf"^data\.{key}: "):
            from_dict(ImageDataConfig, values, prefix="data")


def _write_folder(root: Path, per_class_count: int) -> None:
    """3 classes of 8x8 grey PNGs, each image one distinct grey level (so images are told apart by value)."""
    for k, name in enumerate(("ant", "bee", "cat")):
        (root / name).mkdir(parents=True)
        for j in range(per_class_count):
            Image.fromarray(np.full((8, 8), 10 + 20 * k + j, np.uint8)).save(root / name / f"{j}.png")


def test_one_folder_is_split_into_train_validation_test(tmp_path: Path) -> None:
    _write_folder(tmp_path, 10)
    splits = load_image_data(ImageDataConfig(source="folder", path=str(tmp_path), validation=0.25), seed=0)
    parts = [splits.train, splits.validation, splits.test]
    assert [len(s) for s in parts] == [18, 6, 6]  # test: 20% of 30; validation: 25% of the 24 left
    assert all(per_class(s).tolist() == [n // 3] * 3 for s, n in zip(parts, (18, 6, 6), strict=True))
    values = [int(v) for s in parts for v in s.images[:, 0, 0, 0]]
    assert sorted(values) == sorted(10 + 20 * k + j for k in range(3) for j in range(10))  # disjoint, complete


def test_split_folders_are_kept(tmp_path: Path) -> None:
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        _write_folder(tmp_path / split, n)
    splits = load_image_data(ImageDataConfig(source="folder", path=str(tmp_path)), seed=0)
    assert [len(s) for s in (splits.train, splits.validation, splits.test)] == [18, 6, 9]
    assert splits.train.class_names == ["ant", "bee", "cat"]


def test_coco_file_is_split_with_its_boxes(tmp_path: Path) -> None:
    images, annotations = [], []
    for i in range(10):
        Image.fromarray(np.full((16, 16, 3), 10 * i, np.uint8)).save(tmp_path / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 16, "height": 16})
        annotations.append({"id": i, "image_id": i, "category_id": 7, "bbox": [1, 2, 5, 6]})
    doc = {"images": images, "annotations": annotations, "categories": [{"id": 7, "name": "box"}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc), encoding="utf-8")
    splits = load_image_data(ImageDataConfig(source="coco", path=str(tmp_path / "ann.json")), seed=0)
    assert [len(s) for s in (splits.train, splits.validation, splits.test)] == [7, 1, 2]
    for s in (splits.train, splits.validation, splits.test):
        assert all(b.tolist() == [[1.0, 2.0, 6.0, 8.0]] for b in s.boxes) and s.class_names == ["box"]
    values = sorted(int(v) for s in (splits.train, splits.validation, splits.test) for v in s.images[:, 0, 0, 0])
    assert values == [10 * i for i in range(10)]
