"""A user's folder of labelled images in ImageFolder layout -> ImageSet.

    root/<class name>/<image>.png|jpg|jpeg|bmp|gif|webp

The class names are the sorted folder names and an image's label is its
folder's index (the convention of torchvision's ImageFolder). A folder may
instead hold split folders, ``root/train``, ``root/val`` (or
``root/validation``) and ``root/test``, each in that layout; their classes are
the train split's. Hidden files and folders and files with other suffixes are
ignored. Every image is converted to ``channels`` (1 or 3; None: RGB if any
image is colour, else grayscale) and resized to ``size`` x ``size`` when given;
without ``size`` all images must share one size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fromzero.data.image_set import ImageSet
from fromzero.data.images import IMAGE_SUFFIXES, check_channels, read_image, stack_images
from fromzero.errors import DataError
from fromzero.progress import progress

SPLIT_FOLDERS = {"train": ("train",), "validation": ("val", "validation"), "test": ("test",)}
_SUFFIXES = ", ".join(IMAGE_SUFFIXES)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def class_folders(root: Path) -> list[Path]:
    """The sorted class subfolders of ``root``; none is a one-line DataError."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; point data.path at a folder of class subfolders")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)
    if not folders:
        loose = any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir())
        hint = " (the images lie directly in it)" if loose else ""
        raise DataError(f"{root}: no class folders{hint}; put each class's images in {root}/<class name>/")
    return folders


def image_files(folder: Path) -> list[Path]:
    """The sorted image files of one class folder; none is a one-line DataError."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({_SUFFIXES}); add some or remove the folder")
    return files


def load_image_folder(root: str | Path, channels: int | None = None, size: int | None = None,
                      class_names: list[str] | None = None) -> ImageSet:
    """Read ``root/<class>/<image>`` into an ImageSet with one label per image.

    ``class_names`` (e.g. the train split's) fixes the label order; each folder must then be one of them."""
    root = Path(root)
    check_channels(channels)
    folders = class_folders(root)
    names = [p.name for p in folders] if class_names is None else list(class_names)
    files: list[Path] = []
    labels: list[int] = []
    for folder in folders:
        if folder.name not in names:
            raise DataError(f"{folder}: class {folder.name!r} is not one of the training classes "
                            f"({', '.join(names)}); rename the folder or add the class to the train split")
        found = image_files(folder)
        files.extend(found)
        labels.extend([names.index(folder.name)] * len(found))
    images = [read_image(f, channels, size) for f in progress(files, desc=f"reading {root.name or root}",
                                                                unit="img")]
    pixels = stack_images(images, [str(f.relative_to(root)) for f in files], str(root))
    return ImageSet(pixels, names, labels=torch.tensor(labels, dtype=torch.long), where=str(root))


def find_split_folders(root: str | Path) -> dict[str, Path]:
    """``{"train": root/train, "validation": root/val, "test": root/test}`` for those present (empty when
    ``root`` has no ``train`` folder: then it is one unsplit ImageFolder)."""
    root = Path(root)
    if not (root / "train").is_dir():
        return {}
    found = {}
    for split, options in SPLIT_FOLDERS.items():
        present = [root / name for name in options if (root / name).is_dir()]
        if len(present) > 1:
            raise DataError(f"{root}: both {present[0].name}/ and {present[1].name}/ exist; keep one validation folder")
        if present:
            found[split] = present[0]
    return found


def load_image_folder_splits(root: str | Path, channels: int | None = None,
                             size: int | None = None) -> dict[str, ImageSet]:
    """The split folders of ``root`` (train, and validation / test when present) as ImageSets sharing the train
    split's classes; an unsplit folder is returned as ``{"train": ...}``."""
    root = Path(root)
    folders = find_split_folders(root) or {"train": root}
    train = load_image_folder(folders["train"], channels, size)
    sets = {"train": train}
    for split in ("validation", "test"):
        if split in folders:
            sets[split] = load_image_folder(folders[split], channels, size, class_names=train.class_names)
    return _agree(sets, root)


def _agree(sets: dict[str, ImageSet], root: Path) -> dict[str, ImageSet]:
    """All splits share one image size; grayscale splits become RGB when another split is colour."""
    sizes = {split: s.size for split, s in sets.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{split} {w}x{h}" for split, (h, w) in sizes.items())
        raise DataError(f"{root}: the splits have different image sizes ({listed}); set data.image_size")
    c = max(s.channels for s in sets.values())
    return {split: s if s.channels == c else
            ImageSet(s.images.expand(-1, c, -1, -1).contiguous(), s.class_names, labels=s.labels, where=s.where)
            for split, s in sets.items()}
