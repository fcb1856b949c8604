"""A COCO-format detection file -> ImageSet with boxes.

The JSON holds (Lin et al., 2014, "Microsoft COCO", https://cocodataset.org/#format-data)::

    images:      [{id, file_name, width?, height?}, ...]
    annotations: [{id, image_id, category_id, bbox: [x, y, w, h], iscrowd?}, ...]
    categories:  [{id, name}, ...]

Boxes become ``xyxy = (x, y, x + w, y + h)`` in pixels; class k is the k-th
entry of ``categories`` (COCO ids need not be contiguous: ``category_ids``
keeps them). ``iscrowd`` annotations (one region for many objects) are
skipped and counted, as detectors usually train without them. An image with
no annotations is kept as a negative. With ``size`` every image is resized to
``size`` x ``size`` and its boxes scaled by ``(size / W, size / H)``.

A box may overhang the image by up to ``OVERHANG`` pixels (annotation tools
round) and is clipped; any other bad entry is a one-line DataError naming
the JSON file and the annotation or image.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fromzero.data.image_set import ImageSet
from fromzero.data.images import check_channels, image_to_tensor, open_image, stack_images
from fromzero.errors import DataError
from fromzero.progress import progress

OVERHANG = 1.0  # pixels a box may pass the image edge before it is an error (it is clipped)


@dataclass
class CocoData:
    """What :func:`read_coco` returns: the images with boxes, and what mapping back to COCO needs."""

    images: ImageSet
    category_ids: list[int]  # COCO category id of class k
    image_ids: list[int]  # COCO image id of image i
    skipped_crowd: int  # iscrowd annotations left out


@dataclass
class _Box:
    ann_id: Any
    image_index: int
    label: int
    xywh: tuple[float, float, float, float]
    raw: list  # as written, for messages


def _load(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: COCO annotation file not found; check data.path")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; a COCO annotation file is JSON") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}:{err.colno}: invalid JSON ({err.msg}); fix the file") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DataError(f"{path}: missing or non-list '{key}'; a COCO file has images, annotations and categories")
    return doc


def _get(entry: Any, key: str, kinds: tuple[type, ...], where: str) -> Any:
    """``entry[key]`` checked against ``kinds`` (a bool is not a number)."""
    if not isinstance(entry, dict) or key not in entry:
        raise DataError(f"{where} has no '{key}'; add it")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise DataError(f"{where}: '{key}' is {value!r}, expected {' or '.join(k.__name__ for k in kinds)}")
    return value


def _index(entries: list, path: Path, what: str) -> dict[Any, int]:
    """COCO id -> position; a duplicate id is an error."""
    index: dict[Any, int] = {}
    for i, entry in enumerate(entries):
        key = _get(entry, "id", (int, str), f"{path}: {what}[{i}]")
        if key in index:
            raise DataError(f"{path}: {what} id {key!r} appears twice (entries {index[key]} and {i}); make ids unique")
        index[key] = i
    return index


def _parse_boxes(doc: dict, path: Path, images: dict, categories: dict) -> tuple[list[_Box], int]:
    """Every non-crowd annotation, checked for keys, known ids and a positive size."""
    boxes, crowd = [], 0
    for i, ann in enumerate(doc["annotations"]):
        ann_id = ann.get("id", f"#{i}") if isinstance(ann, dict) else f"#{i}"
        where = f"{path}: annotation {ann_id}"
        if isinstance(ann, dict) and ann.get("iscrowd", 0):
            crowd += 1
            continue
        image_id = _get(ann, "image_id", (int, str), where)
        category_id = _get(ann, "category_id", (int, str), where)
        if image_id not in images:
            raise DataError(f"{where}: image_id {image_id!r} is not in 'images'; fix the id or add the image")
        if category_id not in categories:
            raise DataError(f"{where}: category_id {category_id!r} is not in 'categories'; fix the id or add the "
                            "category")
        bbox = _get(ann, "bbox", (list,), where)
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                     for v in bbox):
            raise DataError(f"{where}: bbox {bbox!r} must be 4 finite numbers [x, y, width, height]")
        if bbox[2] <= 0 or bbox[3] <= 0:
            raise DataError(f"{where}: bbox {bbox} has width or height <= 0 (x2 <= x1 or y2 <= y1); fix or drop it")
        boxes.append(_Box(ann_id, images[image_id], categories[category_id], tuple(float(v) for v in bbox), bbox))
    return boxes, crowd


def _read_images(entries: list, path: Path, images_dir: Path, channels: int | None,
                 size: int | None) -> tuple[list[torch.Tensor], list[tuple[int, int]], list[str]]:
    """Each listed image (as stored: width, height) converted and resized; sizes the JSON states must match."""
    pixels, sizes, names = [], [], []
    for i, entry in enumerate(progress(entries, desc=f"reading {path.name}", unit="img")):
        where = f"{path}: image {entry.get('id', i)!r}"
        name = _get(entry, "file_name", (str,), where)
        try:
            img = open_image(images_dir / name)
        except DataError as err:
            raise DataError(f"{where}: {err}") from None
        for key, actual in (("width", img.size[0]), ("height", img.size[1])):
            if key in entry and entry[key] != actual:
                raise DataError(f"{where}: {key} is {entry[key]} in the JSON but {name} is {img.size[0]}x"
                                f"{img.size[1]}; fix the JSON or the image")
        pixels.append(image_to_tensor(img, channels, size))
        sizes.append(img.size)
        names.append(name)
    return pixels, sizes, names


def _to_xyxy(box: _Box, width: int, height: int, path: Path) -> list[float]:
    x, y, w, h = box.xywh
    x1, y1, x2, y2 = x, y, x + w, y + h
    if x1 < -OVERHANG or y1 < -OVERHANG or x2 > width + OVERHANG or y2 > height + OVERHANG:
        raise DataError(f"{path}: annotation {box.ann_id}: bbox {box.raw} (x, y, w, h) is outside its "
                        f"{width}x{height} image; fix or drop it")
    x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
    if x2 <= x1 or y2 <= y1:
        raise DataError(f"{path}: annotation {box.ann_id}: bbox {box.raw} has no area inside its "
                        f"{width}x{height} image; fix or drop it")
    return [x1, y1, x2, y2]


def _targets(boxes: list[_Box], sizes: list[tuple[int, int]], size: int | None,
             path: Path) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per image: (M_i, 4) float32 xyxy in the output pixels and (M_i,) int64 labels."""
    per_box: list[list[list[float]]] = [[] for _ in sizes]
    per_label: list[list[int]] = [[] for _ in sizes]
    for box in boxes:
        width, height = sizes[box.image_index]
        per_box[box.image_index].append(_to_xyxy(box, width, height, path))
        per_label[box.image_index].append(box.label)
    out_boxes, out_labels = [], []
    for (width, height), b, lab in zip(sizes, per_box, per_label, strict=True):
        xyxy = torch.tensor(b, dtype=torch.float32).reshape(-1, 4)  # (M, 4)
        if size is not None:
            scale = torch.tensor([size / width, size / height] * 2, dtype=torch.float32)
            xyxy = (xyxy * scale).clamp(0, size)  # clamp: float rounding must not leave the image
        out_boxes.append(xyxy)
        out_labels.append(torch.tensor(lab, dtype=torch.long))
    return out_boxes, out_labels


def read_coco(json_path: str | Path, images_dir: str | Path | None = None, channels: int | None = None,
              size: int | None = None) -> CocoData:
    """Read a COCO detection file and its images (from ``images_dir``, default the JSON's folder)."""
    path = Path(json_path)
    check_channels(channels)
    doc = _load(path)
    cats = _index(doc["categories"], path, "category")
    names = [str(_get(c, "name", (str,), f"{path}: category {c['id']!r}")) for c in doc["categories"]]
    if not names:
        raise DataError(f"{path}: 'categories' is empty; list the object classes")
    image_index = _index(doc["images"], path, "image")
    boxes, crowd = _parse_boxes(doc, path, image_index, cats)
    folder = Path(images_dir) if images_dir is not None else path.parent
    pixels, sizes, files = _read_images(doc["images"], path, folder, channels, size)
    out_boxes, out_labels = _targets(boxes, sizes, size, path)
    images = ImageSet(stack_images(pixels, files, str(path)), names, boxes=out_boxes, box_labels=out_labels,
                      where=str(path))
    return CocoData(images, list(cats), list(image_index), crowd)


def load_coco(json_path: str | Path, images_dir: str | Path | None = None, channels: int | None = None,
              size: int | None = None) -> ImageSet:
    """:func:`read_coco`'s ImageSet alone."""
    return read_coco(json_path, images_dir, channels, size).images
