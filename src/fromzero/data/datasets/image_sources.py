"""Where a vision run's images come from: the recipe's ``data`` section and the registry of image sources.

    data: {source: fashion-mnist, validation: 0.1, label_fraction: 0.1, limit_train: null}

Every source yields train / validation / test :class:`ImageSet` s the same way:

    pool, validation?, test = the source's own splits          (IMAGE_SOURCES[source])
    pool = seeded pick of limit_train images from pool           (stratified by class when labelled)
    validation, train = seeded pick of round(validation * |pool|) images from pool, unless the source has one
    train = seeded pick of round(label_fraction * |train|)       (the unlabelled rest is dropped)
    test = seeded pick of limit_test images from test

A stratified pick of n of N images takes n * N_k / N of class k, rounded up or down (scikit-learn's
``train_test_split``), so each split keeps the class proportions to within one image per class. The
same seed gives the same splits. Sources without a test split of their own (a folder without
``train/ val/ test/`` subfolders, a COCO file) hold out ``test`` of their images first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fromzero.config import field, require
from fromzero.data.datasets.image_folds import ImageFoldConfig, fold_split
from fromzero.data.datasets.photos import PhotoConfig
from fromzero.data.datasets.scenes import SceneConfig
from fromzero.data.image_set import ImageSet, ImageSplits
from fromzero.errors import ConfigError

# (train pool, validation or None to split from the pool, test)
SourceSplits = tuple[ImageSet, ImageSet | None, ImageSet]


@dataclass(frozen=True)
class ImageDataConfig:
    """The recipe's ``data`` section: which images, at what size, and how they are split."""

    source: str = field("fashion-mnist", help="fashion-mnist | digits | scenes | photos | folder | coco")
    path: str | None = field(None, help="folder: the ImageFolder root; coco: the COCO JSON file; fashion-mnist / "
                                        "scenes: a folder with the four IDX .gz files (null: the Debian package's)")
    images_dir: str | None = field(None, help="coco: the folder of the image files (null: the JSON's folder)")
    image_size: int | None = field(None, help="resize every image to this square side (null: as stored); not for "
                                              "scenes (data.scenes.canvas) or photos (data.photos)")
    channels: int | None = field(None, help="1 (grayscale) or 3 (RGB; grayscale is copied); null: the source's")
    validation: float = field(0.1, help="fraction of the training images held out for validation (seeded, "
                                        "stratified); scenes, photos and folders with a val/ folder have their own")
    test: float = field(0.2, help="fraction held out for test where the source has no test split (digits, a "
                                  "folder without split folders, coco)")
    label_fraction: float = field(1.0, help="fraction of the training images kept with their labels (seeded, "
                                            "stratified; 1.0, 0.1, 0.01); the rest is dropped")
    limit_train: int | None = field(None, help="use at most this many training images, validation included "
                                               "(quick recipes and tests; null: all)")
    limit_test: int | None = field(None, help="use at most this many test images (null: all)")
    scenes: SceneConfig = field(default_factory=SceneConfig, help="source scenes: the composed scenes")
    photos: PhotoConfig = field(default_factory=PhotoConfig, help="source photos: crops for denoising")
    fold: ImageFoldConfig = field(default_factory=ImageFoldConfig, help="k-fold cross-validation: fold index "
                                  "of k of the training images is the test split (`fromzero cv`; image_folds.py)")

    def __post_init__(self) -> None:
        require(self.source in IMAGE_SOURCES, "source",
                f"unknown image source {self.source!r}; known: {', '.join(IMAGE_SOURCES)}")
        require(self.path is not None or self.source not in ("folder", "coco"), "path",
                f"required for source {self.source}: the " + ("ImageFolder root" if self.source == "folder"
                                                              else "COCO JSON file"))
        require(self.images_dir is None or self.source == "coco", "images_dir", "only source coco reads it")
        require(self.image_size is None or self.image_size > 0, "image_size", f"must be positive, got "
                f"{self.image_size}")
        require(self.image_size is None or self.source not in ("scenes", "photos"), "image_size",
                f"source {self.source} sets its own size (data.scenes.canvas, data.photos.patch); remove it")
        require(self.channels in (None, 1, 3), "channels", f"must be 1, 3 or null, got {self.channels}")
        for name in ("validation", "test"):
            require(0.0 < getattr(self, name) < 1.0, name, f"must be in (0, 1), got {getattr(self, name)}")
        require(0.0 < self.label_fraction <= 1.0, "label_fraction", f"must be in (0, 1], got {self.label_fraction}")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            require(value is None or value > 0, name, f"must be positive or null, got {value}")


def _key(file: str | None, key: str) -> str:
    return f"{file}: data.{key}" if file else f"data.{key}"


def pick(images: ImageSet, n: int, seed: int, key: str) -> tuple[ImageSet, ImageSet | None]:
    """(n images, the rest): a seeded pick, stratified by class when the images have labels; ``key`` names the
    recipe option in the error when the classes cannot all be represented. n >= len(images): (all, None)."""
    from sklearn.model_selection import train_test_split

    if n >= len(images):
        return images, None
    labels = images.labels.numpy() if images.labels is not None else None
    try:
        chosen, rest = train_test_split(np.arange(len(images)), train_size=n, stratify=labels, random_state=seed)
    except ValueError as err:
        k = len(np.unique(labels)) if labels is not None else 0
        raise ConfigError(f"{key}: cannot pick {n} of {len(images)} images with all {k} classes in proportion "
                          f"({str(err).splitlines()[0]}); raise it, or use more images") from None
    return images.subset(torch.from_numpy(np.sort(chosen))), images.subset(torch.from_numpy(np.sort(rest)))


def _hold_out(images: ImageSet, fraction: float, seed: int, key: str) -> tuple[ImageSet, ImageSet]:
    """(the rest, held out): round(fraction * N) images held out (at least one; at least one left)."""
    n_held = max(1, round(fraction * len(images)))
    if n_held >= len(images):
        raise ConfigError(f"{key}: holding out {n_held} of {len(images)} images leaves none; use more images")
    held, rest = pick(images, n_held, seed, key)
    assert rest is not None
    return rest, held


def match_format(images: ImageSet, channels: int | None, size: int | None) -> ImageSet:
    """Grayscale copied to 3 channels (or RGB to BT.601 luma) and bilinear (antialiased) resizing, for the
    built-in sources (after the splits, so only the images used are converted); folder and COCO images are
    converted as they are read, so this leaves them as they are."""
    x = images.images
    if channels is not None and channels != images.channels:
        if channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        else:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if size is not None and images.size != (size, size):
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = x.round().clamp(0, 255).to(torch.uint8)  # (N, C, size, size)
    if x is images.images:
        return images
    return ImageSet(x, images.class_names, images.labels, images.boxes, images.box_labels, images.masks,
                    images.where)


def _fashion_mnist(cfg: ImageDataConfig, seed: int, file: str | None) -> SourceSplits:
    from fromzero.data.datasets.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist

    train, test = load_fashion_mnist(cfg.path or DEFAULT_ROOT)
    return train, None, test


def _digits(cfg: ImageDataConfig, seed: int, file: str | None) -> SourceSplits:
    from fromzero.data.datasets.digits import load_digits

    train, test = load_digits(cfg.test, seed)
    return train, None, test


def _scenes(cfg: ImageDataConfig, seed: int, file: str | None) -> SourceSplits:
    from fromzero.data.datasets.scenes import load_scenes

    s = load_scenes(cfg.scenes, seed, cfg.path)
    return s.train, s.validation, s.test


def _photos(cfg: ImageDataConfig, seed: int, file: str | None) -> SourceSplits:
    from fromzero.data.datasets.photos import load_photos

    p = cfg.photos
    s = load_photos(p.patch, p.test_size, seed, p.stride)
    return s.train, s.validation, s.test


def _folder(cfg: ImageDataConfig, seed: int, file: str | None) -> SourceSplits:
    from fromzero.data.image_folder import load_image_folder_splits

    sets = load_image_folder_splits(cfg.path, cfg.channels, cfg.image_size)
    train, test = sets["train"], sets.get("test")
    if test is None:
        train, test = _hold_out(train, cfg.test, seed + 1, _key(file, "test"))
    return train, sets.get("validation"), test


def _coco(cfg: ImageDataConfig, seed: int, file: str | None) -> SourceSplits:
    from fromzero.data.coco import load_coco

    everything = load_coco(cfg.path, cfg.images_dir, cfg.channels, cfg.image_size)
    train, test = _hold_out(everything, cfg.test, seed + 1, _key(file, "test"))
    return train, None, test


@dataclass(frozen=True)
class ImageSource:
    """A named image source: a one-line description and the function that loads its splits."""

    about: str
    load: Callable[[ImageDataConfig, int, str | None], SourceSplits]


IMAGE_SOURCES: dict[str, ImageSource] = {
    "fashion-mnist": ImageSource("Fashion-MNIST, 28x28 gray, 10 classes, 60k/10k (dataset-fashion-mnist)",
                                 _fashion_mnist),
    "digits": ImageSource("scikit-learn digits, 8x8 gray, 10 classes, 1797 (seeded test split)", _digits),
    "scenes": ImageSource("Fashion-MNIST items composed on a canvas: exact boxes and masks", _scenes),
    "photos": ImageSource("scikit-image photos, gray: training crops, held-out photos for test", _photos),
    "folder": ImageSource("your ImageFolder: root/<class>/<image> (or root/train|val|test/<class>/...)", _folder),
    "coco": ImageSource("your COCO-format detection JSON and its images", _coco),
}


def image_source_lines() -> list[str]:
    """One line per image source: its name and description."""
    return [f"{name:>13}  {source.about}" for name, source in IMAGE_SOURCES.items()]


def load_image_data(cfg: ImageDataConfig, seed: int, file: str | None = None) -> ImageSplits:
    """The train / validation / test splits of ``cfg`` (module docstring); ``file`` (the recipe) prefixes errors."""
    pool, validation, test = IMAGE_SOURCES[cfg.source].load(cfg, seed, file)
    if cfg.limit_train is not None:
        pool = pick(pool, cfg.limit_train, seed + 2, _key(file, "limit_train"))[0]
    if cfg.fold.k is not None:  # cross-validation: the held-out fold is the test split (image_folds.py)
        pool, test = fold_split(pool, cfg.fold, _key(file, "fold"))
        validation = test if cfg.fold.validation == "fold" else None
    if validation is None:
        pool, validation = _hold_out(pool, cfg.validation, seed + 3, _key(file, "validation"))
    train = pool
    if cfg.label_fraction < 1.0:
        n = max(1, round(cfg.label_fraction * len(pool)))
        train = pick(pool, n, seed + 4, _key(file, "label_fraction"))[0]
    if cfg.limit_test is not None:
        test = pick(test, cfg.limit_test, seed + 5, _key(file, "limit_test"))[0]
    return ImageSplits(*(match_format(x, cfg.channels, cfg.image_size) for x in (train, validation, test)))
