"""Image runs end to end through `fromzero train`: each task trains a few steps on a small slice, writes a
run directory that load_run / eval / info / predict accept, and its test metrics equal a recomputation by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fromzero.cli import main
from fromzero.runs import load_run

FASHION = Path("/usr/share/datasets/fashion-mnist")
HAVE_FASHION = (FASHION / "t10k-images-idx3-ubyte.gz").is_file()
if not HAVE_FASHION and os.environ.get("CI") == "true":
    pytest.fail("CI must have Fashion-MNIST (the scenes): scripts/install_fashion_mnist.sh", pytrace=False)
scenes = pytest.mark.skipif(not HAVE_FASHION, reason="Fashion-MNIST absent (the scenes): apt-get install "
                            "dataset-fashion-mnist")
FAST = {"threads": 1, "log_every": 1, "eval_batches": 2, "ckpt_every": 0}


def write_recipe(tmp: Path, name: str, **sections) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"seed": 0, **sections}, sort_keys=False))
    return path


def train(recipe: Path, out: Path, *extra: str) -> None:
    assert main(["train", str(recipe), "--out", str(out), "--no-progress", *extra]) == 0


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("digits")
    recipe = write_recipe(tmp, "digits", task="image_classification", data={"source": "digits"},
                          augment={"hflip": 0.0, "crop_padding": 1},
                          model={"name": "cnn", "channels": [8, 16], "hidden": 32},
                          train={"max_steps": 40, "batch_size": 32, "eval_every": 20, **FAST},
                          optim={"lr": 5e-3, "warmup_steps": 5})
    train(recipe, tmp / "run")
    return tmp / "run"


def test_classification_run_scores_match_a_recount(digits_run: Path) -> None:
    from fromzero.data.datasets.image_sources import load_image_data
    from fromzero.vision.recipe import load_vision_recipe

    for name in ("config.yaml", "vision.json", "labels.txt", "model.safetensors", "eval.json",
                 "plots/confusion_matrix.png", "plots/test_predictions.png", "plots/loss.png"):
        assert (digits_run / name).is_file(), name
    assert not (digits_run / "checkpoints").exists()
    run = load_run(digits_run)
    assert run.kind == "image_classification" and run.tokenizer is None and not run.model.training
    recipe = load_vision_recipe(digits_run / "config.yaml")
    test = load_image_data(recipe.data, recipe.seed).test
    mean = torch.tensor(run.vision["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(run.vision["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        pred = run.model((test.images.float() / 255 - mean) / std).argmax(-1)
    accuracy = int((pred == test.labels).sum()) / len(test.labels)
    saved = json.loads((digits_run / "eval.json").read_text())["test"]["metrics"]
    assert saved["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert accuracy > 0.3  # 10 classes: chance is 0.1


def test_eval_info_and_predict_on_an_image_run(digits_run: Path, tmp_path: Path, capsys) -> None:
    before = json.loads((digits_run / "eval.json").read_text())["test"]["metrics"]["accuracy"]
    assert main(["eval", str(digits_run)]) == 0
    assert json.loads((digits_run / "eval.json").read_text())["test"]["metrics"]["accuracy"] == before
    assert main(["info", str(digits_run)]) == 0
    out = capsys.readouterr().out
    assert "image run: image_classification with cnn" in out and "test (" in out
    image = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(image)
    assert main(["predict", str(digits_run), str(image), "--out", str(tmp_path / "pred")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[0]
    names = (digits_run / "labels.txt").read_text().split()
    assert line.startswith(str(image)) and any(f" {n} " in line for n in names)
    assert (tmp_path / "pred" / "digit.png").is_file()
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(rgb)
    assert main(["predict", str(digits_run), str(rgb), "--out", str(tmp_path / "pred2")]) == 2
    assert not (tmp_path / "pred2").exists()  # nothing written for a refused input
    assert "grayscale" in capsys.readouterr().err


def test_text_commands_refuse_an_image_run(digits_run: Path, capsys) -> None:
    assert main(["generate", str(digits_run), "--prompt", "a", "--max-tokens", "2"]) == 2
    assert "image run" in capsys.readouterr().err


@pytest.mark.parametrize("task,source,model,metric", [
    pytest.param("detection", "scenes", {"name": "yolo-tiny"}, "map_50", marks=scenes),
    pytest.param("detection", "scenes", {"name": "rcnn-tiny"}, "map_50", marks=scenes),
    pytest.param("segmentation", "scenes", {"name": "unet-small"}, "miou", marks=scenes),
    pytest.param("segmentation", "scenes", {"name": "fcn-small"}, "miou", marks=scenes),
    ("denoising", "photos", {"name": "dncnn-small", "depth": 4, "width": 8}, "psnr"),
])
def test_each_task_trains_and_scores(task: str, source: str, model: dict, metric: str, tmp_path: Path) -> None:
    data = {"source": source, "scenes": {"n_train": 48, "n_validation": 8, "n_test": 8},
            "photos": {"patch": 32, "test_size": 64}}
    recipe = write_recipe(tmp_path, task, task=task, data=data, model=model,
                          train={"max_steps": 4, "batch_size": 8, "eval_every": 4, **FAST},
                          optim={"lr": 1e-3, "warmup_steps": 1})
    train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval.json").read_text())["test"]["metrics"]
    assert np.isfinite(metrics[metric])
    info = json.loads((tmp_path / "run" / "vision.json").read_text())
    assert info["task"] == task and info["steps"] == 4
    assert load_run(tmp_path / "run").kind == task
    image = np.zeros((64, 64), dtype=np.uint8)
    image[10:30, 20:44] = 220  # a bright rectangle on black, like a pasted item
    Image.fromarray(image).save(tmp_path / "scene.png")
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "scene.png"), "--out", str(tmp_path / "p")]) == 0
    assert Image.open(tmp_path / "p" / "scene.png").size[0] > 0


def test_mae_pretraining_initialises_a_vit(tmp_path: Path) -> None:
    data = {"source": "digits"}
    vit = {"image_size": 8, "patch_size": 2, "n_layer": 1, "n_head": 2, "n_embd": 16}
    mae = write_recipe(tmp_path, "mae", task="mae", data=data,
                       model={"name": "vit-mae", **vit, "decoder_dim": 16, "decoder_layers": 1, "decoder_heads": 2},
                       train={"max_steps": 3, "batch_size": 16, "eval_every": 3, **FAST})
    train(mae, tmp_path / "mae")
    assert (tmp_path / "mae" / "plots" / "test_reconstructions.png").is_file()
    ft = write_recipe(tmp_path, "ft", task="image_classification", data={**data, "label_fraction": 0.1},
                      model={"name": "vit", **vit}, init=str(tmp_path / "mae"),
                      train={"max_steps": 2, "batch_size": 16, "eval_every": 2, **FAST})
    train(ft, tmp_path / "ft")
    info = json.loads((tmp_path / "ft" / "vision.json").read_text())
    assert info["init"]["kind"] == "mae" and info["init"]["tensors_loaded"] > 0
    reinit = info["init"]["reinitialised"]
    assert reinit and all(name.startswith("head.") for name in reinit)  # only the new classifier


def test_a_users_image_folder_and_coco_file_train(tmp_path: Path) -> None:
    """ImageFolder layout (class folders of RGB PNGs of mixed sizes, resized) and a COCO JSON with boxes."""
    rng = np.random.default_rng(0)
    for cls, value in (("cat", 40), ("dog", 200)):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(12):
            side = 10 + i % 3
            pixels = np.clip(rng.normal(value, 20, (side, side, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / cls / f"{i}.png")
    recipe = write_recipe(tmp_path, "pets", task="image_classification",
                          data={"source": "folder", "path": str(tmp_path / "pets"), "image_size": 8, "test": 0.25},
                          model={"name": "cnn", "channels": [4], "hidden": 8},
                          train={"max_steps": 2, "batch_size": 8, "eval_every": 2, **FAST})
    train(recipe, tmp_path / "pets_run")
    assert load_run(tmp_path / "pets_run").vision["class_names"] == ["cat", "dog"]
    assert load_run(tmp_path / "pets_run").vision["channels"] == 3
    images, annotations = [], []
    for i in range(10):
        canvas = np.zeros((32, 32), dtype=np.uint8)
        x, y = 2 + i, 4 + i
        canvas[y:y + 10, x:x + 12] = 255
        Image.fromarray(canvas).save(tmp_path / f"s{i}.png")
        images.append({"id": i, "file_name": f"s{i}.png", "width": 32, "height": 32})
        annotations.append({"id": 100 + i, "image_id": i, "category_id": 5, "bbox": [x, y, 12, 10], "area": 120,
                            "iscrowd": 0})
    (tmp_path / "boxes.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                     "categories": [{"id": 5, "name": "block"}]}))
    data = {"source": "coco", "path": str(tmp_path / "boxes.json"), "test": 0.2}
    recipe = write_recipe(tmp_path, "coco", task="detection", data=data,
                          model={"name": "yolo-tiny"}, train={"max_steps": 2, "batch_size": 4, "eval_every": 2, **FAST})
    train(recipe, tmp_path / "coco_run")
    assert json.loads((tmp_path / "coco_run" / "vision.json").read_text())["class_names"] == ["block"]


def test_info_on_a_vision_recipe(capsys) -> None:
    recipe = Path(__file__).parents[2] / "recipes" / "vision" / "fashion_resnet.yaml"
    assert main(["info", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "parameters: 2,797,034" in out and "per 28x28 image: 228M forward" in out  # 114M multiply-adds
