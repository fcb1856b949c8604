"""Image-classification ensembles (tune/image_ensemble.py, runs/ensemble.py): identical members equal the
member, the mean of two members (trained with different pixel statistics) is the hand average of their
probabilities, and the ensemble folder works through `fromzero ensemble`, `fromzero eval` and `predict`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import TINY_IMAGE_RECIPE
from fromzero.cli import main
from fromzero.errors import CheckpointError
from fromzero.runs import load_run
from fromzero.tune.ensemble import build_ensemble
from fromzero.vision.inference import normalise
from fromzero.vision.runner import train_vision


@pytest.fixture(scope="module")
def second_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny digits CNN: seed 1 (another split, so other pixel statistics and weights)."""
    folder = tmp_path_factory.mktemp("image-run-2")
    recipe = folder / "digits.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_IMAGE_RECIPE, "seed": 1}))
    return train_vision(recipe, out=folder / "run", progress=False).run_dir


def _images(n: int = 6) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def _probs(run_dir: Path, images: torch.Tensor) -> torch.Tensor:
    run = load_run(run_dir)
    with torch.no_grad():
        return torch.softmax(run.model(normalise(images, run.vision)), dim=-1)


def test_identical_members_equal_the_member(tiny_image_run: Path, tmp_path: Path) -> None:
    build_ensemble([tiny_image_run, tiny_image_run], "mean", tmp_path / "ens", show=False)
    images = _images()
    assert torch.allclose(_probs(tmp_path / "ens", images), _probs(tiny_image_run, images), atol=1e-6)


def test_mean_of_two_is_the_hand_average(tiny_image_run: Path, second_run: Path, tmp_path: Path) -> None:
    a, b = (json.loads((r / "vision.json").read_text())["mean"] for r in (tiny_image_run, second_run))
    assert a != b  # the second member is re-normalised inside the ensemble
    content = build_ensemble([tiny_image_run, second_run], "mean", tmp_path / "ens", show=False)
    images = _images()
    hand = (_probs(tiny_image_run, images) + _probs(second_run, images)) / 2
    assert torch.allclose(_probs(tmp_path / "ens", images), hand, atol=1e-5)
    assert not torch.allclose(hand, _probs(tiny_image_run, images), atol=1e-3)
    assert content["evaluation"]["examples"] > 0 and "accuracy" in content["evaluation"]["ensemble"]


def test_cli_ensemble_eval_and_predict(tiny_image_run: Path, second_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "ens"
    assert main(["ensemble", str(tiny_image_run), str(second_run), "--method", "vote", "--out", str(out),
                 "--no-progress"]) == 0
    built = json.loads((out / "ensemble.json").read_text())["evaluation"]["ensemble"]["accuracy"]
    (out / "eval.json").unlink()
    assert main(["eval", str(out), "--no-progress"]) == 0
    assert json.loads((out / "eval.json").read_text())["test"]["metrics"]["accuracy"] == pytest.approx(built)
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(tmp_path / "a.png")
    assert main(["predict", str(out), str(tmp_path / "a.png"), "--out", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "a.png").is_file()


def test_members_must_match(tiny_image_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    import shutil
    shutil.copytree(tiny_image_run, other)
    info = json.loads((other / "vision.json").read_text())
    info["class_names"] = list(reversed(info["class_names"]))
    (other / "vision.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="class_names"):
        build_ensemble([tiny_image_run, other], "mean", tmp_path / "ens", show=False)
