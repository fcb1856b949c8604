"""A ViT image run exports to Hugging Face (`fromzero export-hf`) and imports back (`fromzero import-hf`):
ViTForImageClassification's logits equal ours on the same normalised pixels, and the round trip is exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from fromzero.cli import main
from fromzero.runs import load_run
from fromzero.vision.inference import normalise

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("vit")
    recipe = {"seed": 0, "task": "image_classification", "data": {"source": "digits"},
              "model": {"name": "vit", "patch_size": 2, "n_layer": 1, "n_head": 2, "n_embd": 16},
              "train": {"max_steps": 3, "batch_size": 16, "threads": 1, "eval_every": 3, "eval_batches": 1}}
    (tmp / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(tmp / "r.yaml"), "--out", str(tmp / "run"), "--no-progress"]) == 0
    return tmp / "run"


def test_export_loads_in_transformers_with_equal_logits(vit_run: Path, tmp_path: Path) -> None:
    assert main(["export-hf", str(vit_run), str(tmp_path / "hf")]) == 0
    hf = transformers.ViTForImageClassification.from_pretrained(tmp_path / "hf").eval()
    run = load_run(vit_run)
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    pixels = normalise(images, run.vision)
    with torch.no_grad():
        ours, theirs = run.model(pixels), hf(pixel_values=pixels).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    processor = json.loads((tmp_path / "hf" / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx(run.vision["mean"])
    assert hf.config.id2label[0] == run.vision["class_names"][0]


def test_import_back_is_an_image_run_with_identical_weights(vit_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["export-hf", str(vit_run), str(tmp_path / "hf")]) == 0
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    original, back = load_run(vit_run), load_run(tmp_path / "back")
    assert back.kind == "image_classification" and back.vision["mean"] == pytest.approx(original.vision["mean"])
    for (name, a), (_, b) in zip(original.model.state_dict().items(), back.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert main(["info", str(tmp_path / "back")]) == 0
    assert "image run: image_classification with vit" in capsys.readouterr().out


def test_only_vit_classifiers_export(tiny_image_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["export-hf", str(tiny_image_run), str(tmp_path / "hf")]) == 2
    assert "ViT classifiers" in capsys.readouterr().err and not (tmp_path / "hf").exists()
