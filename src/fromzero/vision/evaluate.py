"""Scoring an image run on its test split with the metric libraries, and the pictures that go with it.

    image_classification  accuracy, macro P/R/F1, per class (scikit-learn)   plots/confusion_matrix.png,
                                                                              plots/test_predictions.png
    detection             mAP@0.5, mAP@0.5:0.95, mAP@0.75, mAR@100          plots/test_boxes.png
                          (torchmetrics, pycocotools backend)
    segmentation          mIoU, Dice, pixel accuracy, IoU per class          plots/test_masks.png
    denoising             PSNR and SSIM of the noisy input and of the output (scikit-image), and of the
                          scikit-image wavelet baseline                      plots/test_denoised.png
    mae                   masked-patch reconstruction loss                   plots/test_reconstructions.png

The test batches come from the same pipeline as validation (no augmentation; denoising noise fixed per
image), so ``fromzero eval RUN`` reproduces the numbers written at the end of training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fromzero.data.datasets.image_sources import load_image_data
from fromzero.data.datasets.photos import wavelet_baseline
from fromzero.data.image_batches import ImageBatches
from fromzero.data.image_set import ImageSet
from fromzero.eval.eval_file import update_eval_file
from fromzero.eval.image_metrics import classification_scores, denoising_scores, detection_scores, segmentation_scores
from fromzero.eval.image_plots import (
    boxes_grid_png,
    confusion_matrix_png,
    denoise_triplets_png,
    mask_overlay_png,
    prediction_grid_png,
)
from fromzero.runs import Run, load_run
from fromzero.vision.recipe import VisionRecipe, load_vision_recipe
from fromzero.vision.tasks import build_objective, detections, segmentations

EVAL_KEY = "test"
PICTURE_SCORE = 0.3  # boxes drawn in the test picture (every box counts in mAP)


def test_batches(run: Run, recipe: VisionRecipe, test: ImageSet, batch_size: int = 64) -> ImageBatches:
    vision = run.vision or {}
    return ImageBatches(test, recipe.task, batch_size, seed=recipe.seed, mean=vision["mean"], std=vision["std"],
                        noise=recipe.noise, patch=getattr(run.model_config, "patch_size", None))


def evaluate_image_run(run_dir: str | Path, test: ImageSet | None = None) -> dict[str, Any]:
    """Score ``run_dir`` on its test split (loaded from its recipe unless given); writes eval.json["test"]
    and the task's PNGs under plots/; returns the metrics."""
    run = load_run(run_dir)
    file = str(run.path / "config.yaml")
    recipe = load_vision_recipe(file)
    if test is None:
        test = load_image_data(recipe.data, recipe.seed, file).test
    batches = test_batches(run, recipe, test)
    plots = run.path / "plots"
    scorer = {"image_classification": _classification, "detection": _detection, "segmentation": _segmentation,
              "denoising": _denoising, "mae": _mae}[recipe.task]
    with torch.no_grad():
        metrics = scorer(run, recipe, test, batches, plots)
    update_eval_file(run.path, {EVAL_KEY: {"split": "test", "images": len(test), "metrics": metrics}})
    return metrics


def _classification(run: Run, recipe: VisionRecipe, test: ImageSet, batches: ImageBatches, plots: Path) -> dict:
    pred = torch.cat([run.model(batches.batch(i)["pixels"]).argmax(-1) for i in range(len(batches))])
    names = test.class_names
    scores = classification_scores(test.labels.tolist(), pred.tolist(), names)
    confusion_matrix_png(test.labels.tolist(), pred.tolist(), names, plots / "confusion_matrix.png")
    prediction_grid_png(test.images[:32], test.labels[:32].tolist(), pred[:32].tolist(), names,
                        plots / "test_predictions.png")
    return scores


def _detection(run: Run, recipe: VisionRecipe, test: ImageSet, batches: ImageBatches, plots: Path) -> dict:
    detect = vars(recipe.detect)
    preds, targets = detections(run.model, batches, len(batches), detect)
    scores = detection_scores(preds, targets)
    shown = [{k: v[d["scores"] >= PICTURE_SCORE] for k, v in d.items()} for d in preds[:16]]  # mAP uses all
    boxes_grid_png(test.images[:16], shown, targets[:16], test.class_names, plots / "test_boxes.png")
    return scores


def _segmentation(run: Run, recipe: VisionRecipe, test: ImageSet, batches: ImageBatches, plots: Path) -> dict:
    pred, true = segmentations(run.model, batches, len(batches))
    scores = segmentation_scores(pred, true, len(test.mask_classes), test.mask_classes)
    mask_overlay_png(test.images[:8], pred[:8], true[:8], test.mask_classes, plots / "test_masks.png")
    return scores


def _denoising(run: Run, recipe: VisionRecipe, test: ImageSet, batches: ImageBatches, plots: Path) -> dict:
    noisy, clean, out = [], [], []
    for i in range(len(batches)):
        batch = batches.batch(i)
        noisy.append(batch["pixels"])
        clean.append(batch["target"])
        out.append(run.model(batch["pixels"]).clamp(0, 1))
    noisy_t, clean_t, out_t = torch.cat(noisy), torch.cat(clean), torch.cat(out)
    scores = denoising_scores(clean_t, noisy_t, out_t)
    wavelet = torch.stack([torch.as_tensor(wavelet_baseline(x.numpy()), dtype=torch.float32) for x in noisy_t])
    base = denoising_scores(clean_t, noisy_t, wavelet.reshape(clean_t.shape))
    scores.update({f"wavelet_{k}": v for k, v in base.items() if not k.startswith("noisy")})
    scores["sigma"] = recipe.noise.sigma
    denoise_triplets_png(noisy_t[:4], clean_t[:4], out_t[:4], plots / "test_denoised.png")
    return scores


def _mae(run: Run, recipe: VisionRecipe, test: ImageSet, batches: ImageBatches, plots: Path) -> dict:
    objective = build_objective("mae", recipe.objective, "config.yaml")
    total, n = 0.0, 0
    for i in range(len(batches)):
        out = objective(run.model, batches.batch(i))
        total += float(out.loss) * out.weight
        n += out.weight
    batch = batches.batch(0)
    pred, mask = run.model(batch["pixels"][:4], batch["mask_noise"][:4])
    pixels = batch["pixels"][:4]
    recon = run.model.reconstruct(pixels, pred, mask)
    lo, hi = _range(pixels)
    hidden = run.model.unpatchify(mask.unsqueeze(-1).expand_as(pred)).bool()  # (B, C, H, W): masked pixels
    masked = torch.where(hidden, lo, pixels)  # hidden patches drawn black
    scale = [((x - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1) for x in (masked, pixels, recon)]
    denoise_triplets_png(*scale, plots / "test_reconstructions.png",
                         names=("masked", "reconstruction", "original"))
    return {"loss": total / max(n, 1), "mask_ratio": float(mask.mean())}


def _range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (min, max) of the original pixels: one display scale for all three panels of a row."""
    return x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
