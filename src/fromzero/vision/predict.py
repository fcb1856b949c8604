"""``fromzero predict RUN IMAGE...``: image files through an image run, printed and drawn.

Every file is read and checked before anything is written: a non-image or truncated file, or an image
with another channel count than the model's (RGB into a grayscale model; ``convert=True`` converts
instead), is a one-line error and no PNG is written. Images are resized to the run's input size when the
model has one (classification, detection, segmentation, MAE); denoising keeps the native size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fromzero.data.images import read_image
from fromzero.errors import CheckpointError, DataError
from fromzero.eval.image_plots import boxes_png, denoise_triplets_png, mask_overlay_png, prediction_grid_png
from fromzero.runs import Run, load_run
from fromzero.vision.inference import check_images, predict_batch

CHANNEL_NAMES = {1: "grayscale", 3: "RGB", 4: "RGBA"}


def read_for_run(run: Run, path: str, convert: bool = False) -> torch.Tensor:
    """One image file as the run's input: uint8 (C, H, W), channel count checked (or converted)."""
    vision = run.vision or {}
    channels = int(vision["channels"])
    size = vision["image_size"][0] if vision.get("fixed_size", True) else None
    image = read_image(path, channels if convert else None, None)
    if image.shape[0] != channels:
        raise DataError(f"{path}: a {CHANNEL_NAMES.get(image.shape[0], str(image.shape[0]) + '-channel')} image, "
                        f"but {run.path} takes {CHANNEL_NAMES.get(channels, channels)} images; convert it (or "
                        "pass --convert)")
    if size is not None and tuple(image.shape[1:]) != (size, size):
        image = read_image(path, channels, size)
    return image


def predict_files(run_dir: str | Path, files: list[str], out: Path, *, top_k: int = 3,
                  score_threshold: float | None = None, convert: bool = False) -> list[str]:
    """Predict each file; write ``out/<stem>.png`` (annotated); return the printed lines."""
    run = load_run(run_dir)
    if run.vision is None:
        raise CheckpointError(f"{run_dir} is a text run; `fromzero predict` takes image runs (`fromzero train`)")
    images = [read_for_run(run, f, convert) for f in files]  # every file checked before anything is written
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder for the annotated PNGs")
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for path, image in zip(files, images, strict=True):
        target = out / f"{Path(path).stem}.png"
        lines += _one(run, path, image[None], target, top_k, score_threshold)
    return lines


def _one(run: Run, path: str, image: torch.Tensor, target: Path, top_k: int, threshold: float | None) -> list[str]:
    vision = run.vision or {}
    names, task = vision["class_names"], run.kind
    check_images(image, vision, path)
    if task == "image_classification":
        probs = predict_batch(run, image)[0]
        top = probs.topk(min(top_k, len(names)))
        prediction_grid_png(image, [-1], [int(top.indices[0])], names, target)
        ranked = ", ".join(f"{names[int(i)]} {float(p):.3f}" for p, i in zip(top.values, top.indices, strict=True))
        return [f"{path}: {ranked} -> {target}"]
    if task == "detection":
        det = predict_batch(run, image)[0]
        keep = det["scores"] >= (threshold if threshold is not None else 0.0)
        boxes, scores, labels = det["boxes"][keep], det["scores"][keep], det["labels"][keep]
        boxes_png(image[0], boxes, labels, names, target, scores=scores)
        rows = [f"  {names[int(lab)]} {float(s):.3f} [{', '.join(f'{float(v):.1f}' for v in b)}]"
                for b, s, lab in zip(boxes, scores, labels, strict=True)]
        return [f"{path}: {len(rows)} boxes -> {target}", *rows]
    if task == "segmentation":
        mask = predict_batch(run, image)
        mask_overlay_png(image, mask, None, ["background", *names], target)
        counts = torch.bincount(mask.flatten(), minlength=len(names) + 1)
        found = [f"{(['background', *names])[i]} {int(c)} px" for i, c in enumerate(counts) if c > 0 and i > 0]
        return [f"{path}: {', '.join(found) or 'background only'} -> {target}"]
    if task == "denoising":
        clean = predict_batch(run, image)
        noisy = image.float() / 255
        denoise_triplets_png(noisy, None, clean, target)
        return [f"{path}: denoised -> {target}"]
    recon, mask = predict_batch(run, image)
    return [f"{path}: MAE reconstruction of {int(mask.sum())}/{mask.numel()} masked patches (see fromzero eval)"]
