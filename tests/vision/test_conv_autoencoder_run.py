"""The convolutional autoencoder through `fromzero train` (task denoising): the recipe validates, and a few
steps on the scikit-learn digits write a run that loads and whose test PSNR is recomputed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from fromzero.cli import main
from fromzero.models import family_of
from fromzero.runs import load_run
from fromzero.vision.recipe import load_vision_recipe

RECIPE = Path(__file__).parents[2] / "recipes" / "vision" / "fashion_autoencoder.yaml"


def test_fashion_recipe_validates_with_the_fashion_shape() -> None:
    recipe = load_vision_recipe(RECIPE)
    cfg = recipe.model_config({"in_channels": 1, "image_size": 28})
    assert family_of(cfg).name == "conv-autoencoder" and cfg.d_z == 32 and recipe.task == "denoising"


def test_digits_autoencoder_run(tmp_path: Path) -> None:
    recipe = tmp_path / "digits_ae.yaml"
    recipe.write_text(yaml.safe_dump({
        "seed": 0, "task": "denoising", "data": {"source": "digits"}, "noise": {"sigma": 10},
        "model": {"name": "conv-autoencoder", "widths": [8, 16], "d_z": 8},
        "train": {"max_steps": 30, "batch_size": 32, "eval_every": 15, "eval_batches": 2, "ckpt_every": 0,
                  "log_every": 5, "threads": 1},
        "optim": {"lr": 5e-3, "warmup_steps": 0}}))
    assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    run = load_run(tmp_path / "run")
    assert run.model.config.image_size == 8 and run.model.config.in_channels == 1  # filled from the data
    scores = json.loads((tmp_path / "run" / "eval.json").read_text())["test"]["metrics"]
    assert 5 < scores["psnr"] < 60 and (tmp_path / "run" / "plots" / "test_denoised.png").is_file()
    from fromzero.vision.evaluate import test_batches

    batches = test_batches(run, load_vision_recipe(tmp_path / "run" / "config.yaml"),
                           _test_split(tmp_path / "run"))
    psnr = []
    with torch.no_grad():
        for i in range(len(batches)):
            b = batches.batch(i)
            err = ((run.model(b["pixels"]).clamp(0, 1) - b["target"]) ** 2).flatten(1).mean(1)
            psnr.append(10 * torch.log10(1 / err))
    assert abs(float(torch.cat(psnr).mean()) - scores["psnr"]) < 1e-3


def _test_split(run_dir: Path):
    from fromzero.data.datasets.image_sources import load_image_data

    recipe = load_vision_recipe(run_dir / "config.yaml")
    return load_image_data(recipe.data, recipe.seed, str(run_dir / "config.yaml")).test
