"""ImageFolder layouts and COCO detection files built in a temp folder, checked against the values written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fromzero.data.coco import load_coco, read_coco
from fromzero.data.image_folder import load_image_folder, load_image_folder_splits
from fromzero.errors import DataError


def _png(path: Path, value: int, size: tuple[int, int] = (6, 5), rgb: bool = False) -> None:
    """A constant image of ``value``; size is (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if rgb else (size[1], size[0])
    Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(path)


def _error(fn, *args, match: str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value) and match in str(info.value), str(info.value)
    return str(info.value)


# --- ImageFolder -------------------------------------------------------------------------------------------------

def test_image_folder_labels_follow_sorted_folders(tmp_path: Path) -> None:
    written = {"dog": [10, 11, 12], "ant": [20], "cat": [30, 31]}
    for cls, values in written.items():
        for v in values:
            _png(tmp_path / cls / f"{v}.png", v)
    (tmp_path / "dog" / "README.txt").write_text("ignored")
    (tmp_path / ".cache").mkdir()
    s = load_image_folder(tmp_path)
    assert s.class_names == ["ant", "cat", "dog"]
    assert len(s) == 6 and s.images.shape == (6, 1, 5, 6)
    for x, label in zip(s.images, s.labels.tolist(), strict=True):
        assert int(x[0, 0, 0]) in written[s.class_names[label]]


def test_image_folder_sizes_and_channels(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "1.png", 50, size=(8, 8))
    _png(tmp_path / "b" / "2.png", 90, size=(4, 6), rgb=True)
    _error(load_image_folder, tmp_path, match="data.image_size")
    s = load_image_folder(tmp_path, size=5)
    assert s.images.shape == (2, 3, 5, 5)  # one colour image makes the set RGB
    assert (s.images[0] == 50).all() and (s.images[1] == 90).all()
    assert load_image_folder(tmp_path, channels=1, size=3).images.shape == (2, 1, 3, 3)


def test_image_folder_errors(tmp_path: Path) -> None:
    _error(load_image_folder, tmp_path / "nope", match="folder not found")
    _error(load_image_folder, tmp_path, match="no class folders")
    _png(tmp_path / "loose.png", 1)
    _error(load_image_folder, tmp_path, match="lie directly")
    _png(tmp_path / "a" / "1.png", 1)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("no images here")
    assert str(tmp_path / "b") in _error(load_image_folder, tmp_path, match="no images")


def test_image_folder_splits(tmp_path: Path) -> None:
    for cls, v in (("x", 1), ("y", 2), ("z", 3)):
        _png(tmp_path / "train" / cls / "0.png", v)
    _png(tmp_path / "val" / "z" / "0.png", 3)
    _png(tmp_path / "test" / "y" / "0.png", 2, rgb=True)
    sets = load_image_folder_splits(tmp_path)
    assert set(sets) == {"train", "validation", "test"}
    assert sets["validation"].class_names == ["x", "y", "z"] and sets["validation"].labels.tolist() == [2]
    assert sets["test"].labels.tolist() == [1]
    assert all(s.channels == 3 for s in sets.values())  # the RGB test split makes every split RGB
    _png(tmp_path / "val" / "w" / "0.png", 9)
    _error(load_image_folder_splits, tmp_path, match="not one of the training classes")
    flat = tmp_path / "flat"
    _png(flat / "k" / "0.png", 4)
    assert list(load_image_folder_splits(flat)) == ["train"]


# --- COCO --------------------------------------------------------------------------------------------------------

def _coco(tmp_path: Path, annotations: list[dict], **extra) -> Path:
    _png(tmp_path / "imgs" / "a.png", 0, size=(32, 24))
    _png(tmp_path / "imgs" / "b.png", 0, size=(32, 24))
    doc = {"images": [{"id": 5, "file_name": "imgs/a.png", "width": 32, "height": 24},
                      {"id": 9, "file_name": "imgs/b.png"}],
           "categories": [{"id": 7, "name": "boat"}, {"id": 3, "name": "car"}],
           "annotations": annotations, **extra}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_boxes_labels_and_resize(tmp_path: Path) -> None:
    anns = [{"id": 1, "image_id": 5, "category_id": 3, "bbox": [2, 4, 10, 6]},
            {"id": 2, "image_id": 5, "category_id": 7, "bbox": [0, 0, 32, 24]},
            {"id": 3, "image_id": 9, "category_id": 7, "bbox": [1, 1, 2, 2], "iscrowd": 1}]
    data = read_coco(_coco(tmp_path, anns))
    s = data.images
    assert s.class_names == ["boat", "car"] and data.category_ids == [7, 3] and data.image_ids == [5, 9]
    assert data.skipped_crowd == 1
    assert s.boxes[0].tolist() == [[2, 4, 12, 10], [0, 0, 32, 24]] and s.box_labels[0].tolist() == [1, 0]
    assert s.boxes[1].shape == (0, 4) and s.box_labels[1].shape == (0,)  # a negative image is kept
    small = load_coco(tmp_path / "ann.json", size=16)  # x scaled by 16/32, y by 16/24
    expected = torch.tensor([[1, 8 / 3, 6, 20 / 3], [0, 0, 16, 16]])
    assert small.images.shape == (2, 1, 16, 16) and torch.allclose(small.boxes[0], expected)


@pytest.mark.parametrize("ann, match", [
    ({"id": 41, "image_id": 5, "category_id": 3, "bbox": [20, 4, 20, 6]}, "annotation 41: bbox [20, 4, 20, 6]"),
    ({"id": 42, "image_id": 5, "category_id": 3, "bbox": [2, 4, 0, 6]}, "annotation 42: bbox [2, 4, 0, 6]"),
    ({"id": 43, "image_id": 5, "category_id": 3, "bbox": [2, 4, 5, -1]}, "annotation 43: bbox"),
    ({"id": 44, "image_id": 5, "category_id": 4, "bbox": [2, 4, 5, 5]}, "annotation 44: category_id 4"),
    ({"id": 45, "image_id": 6, "category_id": 3, "bbox": [2, 4, 5, 5]}, "annotation 45: image_id 6"),
    ({"id": 46, "image_id": 5, "category_id": 3}, "annotation 46 has no 'bbox'"),
    ({"id": 47, "image_id": 5, "category_id": 3, "bbox": [2, 4, 5]}, "annotation 47: bbox"),
])
def test_coco_bad_annotations(tmp_path: Path, ann: dict, match: str) -> None:
    path = _coco(tmp_path, [ann])
    assert str(path) in _error(read_coco, path, match=match)


def test_coco_bad_files(tmp_path: Path) -> None:
    path = _coco(tmp_path, [])
    (tmp_path / "imgs" / "b.png").unlink()
    assert "b.png" in _error(read_coco, path, match="image 9")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [,]}')
    _error(read_coco, bad, match="invalid JSON")
    bad.write_text(json.dumps({"images": [], "categories": []}))
    _error(read_coco, bad, match="'annotations'")
    _png(tmp_path / "imgs" / "b.png", 0, size=(30, 24))
    doc = json.loads(path.read_text())
    doc["images"][1]["width"] = 32
    path.write_text(json.dumps(doc))
    _error(read_coco, path, match="width is 32 in the JSON")
