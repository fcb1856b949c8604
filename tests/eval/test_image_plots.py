"""Image-task figures: whole PNGs written atomically, with the colours and counts they promise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fromzero.errors import DataError
from fromzero.eval import image_plots
from fromzero.eval.image_plots import (
    RIGHT,
    WRONG,
    boxes_grid_png,
    boxes_png,
    class_colour,
    confusion_matrix_png,
    denoise_triplets_png,
    mask_overlay_png,
    mask_rgba,
    prediction_grid_png,
)

NAMES = ["shirt", "bag", "shoe"]


def _scene(n: int = 3, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Grey images with a bright square (class 0) and a red rectangle (class 1), their masks and boxes."""
    images = torch.full((n, 3, size, size), 90, dtype=torch.uint8)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        images[i, :, 2 + i:14 + i, 3:15] = 200
        masks[i, 2 + i:14 + i, 3:15] = 1
        images[i, 0, 18:30, 16:30] = 230
        masks[i, 18:30, 16:30] = 2
    targets = [{"boxes": torch.tensor([[3.0, 2 + i, 15, 14 + i], [16, 18, 30, 30]]), "labels": torch.tensor([0, 1])}
               for i in range(n)]
    return images, masks, targets


def _png(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()  # a truncated or corrupt file fails here
    with Image.open(path) as im:
        im.load()
        return im.size


def _hex(colour: str) -> tuple[float, float, float]:
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))


def _pixels_near(path: Path, rgb: tuple[float, float, float], tol: int = 8) -> int:
    """How many pixels of the PNG are within ``tol`` of the colour ``rgb`` (components in [0, 1])."""
    a = np.asarray(Image.open(path).convert("RGB")).astype(int)
    target = np.array([round(255 * c) for c in rgb[:3]])
    return int((np.abs(a - target).max(-1) <= tol).sum())


def _tinted(path: Path, channel: int, margin: int = 40) -> int:
    """How many pixels have colour ``channel`` (0 red, 1 green) above both others by ``margin``: antialiased
    title text keeps its hue but not its exact colour."""
    a = np.asarray(Image.open(path).convert("RGB")).astype(int)
    others = np.delete(a, channel, axis=-1).max(-1)
    return int((a[..., channel] - others > margin).sum())


def test_every_plot_is_a_whole_png_and_no_temp_file_is_left(tmp_path: Path) -> None:
    images, masks, targets = _scene()
    preds = [{**t, "scores": torch.tensor([0.9, 0.4])} for t in targets]
    clean = images[:, :1].float() / 255
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    written = [
        confusion_matrix_png([0, 1, 2, 2], [0, 2, 2, 1], NAMES, tmp_path / "confusion.png"),
        prediction_grid_png(images, [0, 1, 2], [0, 1, 1], NAMES, tmp_path / "grid.png"),
        boxes_png(images[0], preds[0]["boxes"], preds[0]["labels"], NAMES, tmp_path / "boxes.png",
                  scores=preds[0]["scores"], true_boxes=targets[0]["boxes"]),
        boxes_grid_png(images, preds, targets, NAMES, tmp_path / "boxes_grid.png"),
        mask_overlay_png(images, masks, masks, ["background", *NAMES], tmp_path / "masks.png"),
        denoise_triplets_png(noisy, clean, (clean + noisy) / 2, tmp_path / "denoise.png"),
    ]
    for path in written:
        width, height = _png(path)
        assert width > 100 and height > 100, path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_prediction_grid_titles_green_when_right_and_red_when_wrong(tmp_path: Path) -> None:
    assert _hex(RIGHT)[1] > max(_hex(RIGHT)[0], _hex(RIGHT)[2]) and _hex(WRONG)[0] > max(_hex(WRONG)[1:])
    images = torch.randint(0, 256, (3, 1, 12, 12), dtype=torch.uint8)  # grey: no hue of its own
    right = prediction_grid_png(images, [0, 1, 2], [0, 1, 2], NAMES, tmp_path / "right.png")
    assert _tinted(right, 1) > 0 and _tinted(right, 0) == 0
    wrong = prediction_grid_png(images, [0, 1, 2], [0, 1, 0], NAMES, tmp_path / "wrong.png")
    assert _tinted(wrong, 0) > 0


def test_unknown_truth_is_drawn_without_a_verdict(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (1, 1, 12, 12), dtype=torch.uint8)
    path = prediction_grid_png(images, [-1], [2], NAMES, tmp_path / "new.png")  # a new image: no true label
    assert _tinted(path, 0) == 0 and _tinted(path, 1) == 0
    with pytest.raises(DataError, match="outside the 3 classes"):
        prediction_grid_png(images, [0], [3], NAMES, tmp_path / "bad.png")


def test_without_a_reference_overlays_and_triplets_drop_a_column(tmp_path: Path) -> None:
    images, masks, _ = _scene(n=1)
    clean = images[:, :1].float() / 255
    with_truth = _png(mask_overlay_png(images, masks, masks, ["background", *NAMES], tmp_path / "m3.png"))
    alone = _png(mask_overlay_png(images, masks, None, ["background", *NAMES], tmp_path / "m2.png"))
    assert alone[1] == with_truth[1] and alone[0] == pytest.approx(with_truth[0] * 2 / 3, abs=1)
    with_clean = _png(denoise_triplets_png(clean, clean, clean, tmp_path / "d3.png"))
    alone = _png(denoise_triplets_png(clean, None, clean, tmp_path / "d2.png"))
    assert alone[1] == with_clean[1] and alone[0] == pytest.approx(with_clean[0] * 2 / 3, abs=1)


def test_prediction_grid_draws_at_most_max_images(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    labels = [0] * 6
    capped = prediction_grid_png(images, labels, labels, NAMES, tmp_path / "capped.png", max_images=4)
    exact = prediction_grid_png(images[:4], labels[:4], labels[:4], NAMES, tmp_path / "exact.png")
    assert _png(capped) == _png(exact)  # six images in a row would make it wider


def test_boxes_are_drawn_in_their_class_colours(tmp_path: Path) -> None:
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)  # black, so only the boxes are coloured
    path = boxes_png(image, torch.tensor([[8.0, 8, 40, 40]]), torch.tensor([1]), NAMES, tmp_path / "b.png",
                     scores=torch.tensor([0.8]))
    assert _pixels_near(path, class_colour(1)) > 20
    assert _pixels_near(path, class_colour(2)) == 0
    path = boxes_png(image, torch.tensor([[8.0, 8, 40, 40]]), torch.tensor([1]), NAMES, tmp_path / "b.png",
                     true_boxes=torch.tensor([[20.0, 20, 60, 60]]), true_labels=torch.tensor([2]))
    assert _pixels_near(path, class_colour(2)) > 20  # the dashed ground truth


def test_mask_rgba_colours_each_class_and_clears_background() -> None:
    mask = np.array([[0, 1], [2, 255]])
    rgba = mask_rgba(mask)
    assert rgba[0, 0, 3] == 0  # background is clear
    assert tuple(rgba[0, 1, :3]) == pytest.approx(class_colour(1)[:3]) and rgba[0, 1, 3] > 0
    assert tuple(rgba[1, 0, :3]) == pytest.approx(class_colour(2)[:3])
    assert tuple(rgba[1, 1]) == pytest.approx(image_plots.IGNORE_RGBA)


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path: Path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    old = tmp_path / "grid.png"
    old.write_bytes(b"old")

    def broken_savefig(self, fname, **kwargs) -> None:
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError("simulated crash mid-write")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    images, _, _ = _scene()
    with pytest.raises(OSError, match="simulated"):
        prediction_grid_png(images, [0, 1, 2], [0, 1, 2], NAMES, old)
    with pytest.raises(OSError, match="simulated"):
        denoise_triplets_png(images.float() / 255, images.float() / 255, images.float() / 255, tmp_path / "d.png")
    assert old.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_mismatched_inputs_are_one_line_errors(tmp_path: Path) -> None:
    images, masks, _ = _scene()
    with pytest.raises(DataError, match="3 images but 2"):
        prediction_grid_png(images, [0, 1], [0, 1], NAMES, tmp_path / "x.png")
    with pytest.raises(DataError, match="1 or 3 channels"):
        mask_overlay_png(torch.zeros(3, 2, 32, 32, dtype=torch.uint8), masks, masks, NAMES, tmp_path / "x.png")
    assert not any(tmp_path.iterdir())
