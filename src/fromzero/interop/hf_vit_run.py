"""`fromzero export-hf` / `import-hf` for image runs: a ViT classifier run <-> a Hugging Face
``ViTForImageClassification`` folder (the tensors themselves: ``interop/hf_vit.py``).

Export writes the run's pixel normalisation as ``preprocessor_config.json`` (HF's ViTImageProcessor
rescales by 1/255 and normalises with ``image_mean`` / ``image_std``, the same as ``vision.json``'s mean
and std). Import writes an image run directory that ``predict``, ``eval``-free ``info`` and ``serve``
open: ``vision.json`` (normalisation from ``preprocessor_config.json``, else HF's ViT default 0.5 / 0.5),
``labels.txt``, ``model.safetensors``, and a ``config.yaml`` recipe (task image_classification, the ViT's
config) that fine-tunes it further with ``init:``.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_model

from fromzero.config import dump_yaml, to_dict
from fromzero.errors import CheckpointError
from fromzero.interop.hf_files import read_json
from fromzero.interop.hf_vit import export_vit, import_vit
from fromzero.runs import VISION_INFO, load_run
from fromzero.staging import check_target, staged_dir

HF_VIT_DEFAULT_NORM = 0.5  # ViTImageProcessor's default image_mean and image_std


def is_hf_vit_folder(path: str | Path) -> bool:
    """True for a local Hugging Face folder whose config.json is a ViT (``model_type: vit``)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "vit"
    except (OSError, ValueError, AttributeError):
        return False


def export_vit_run(run_dir: str | Path, out_dir: str | Path, *, force: bool = False) -> Path:
    """Export an image-classification run with a ``vit`` model as a ViTForImageClassification folder."""
    run = load_run(run_dir)
    if run.vision is None or run.kind != "image_classification" or run.vision.get("family") != "vit":
        what = f"a {run.vision.get('family')} {run.kind} run" if run.vision else "a text run"
        raise CheckpointError(f"{run_dir}: {what}; image runs export to Hugging Face only as ViT classifiers "
                              "(family vit, task image_classification)")
    return export_vit(run.model, run.vision["class_names"], out_dir, force=force,
                      image_mean=run.vision["mean"], image_std=run.vision["std"])


def import_vit_run(hf_dir: str | Path, run_dir: str | Path, *, force: bool = False) -> Path:
    """Import a ViTForImageClassification folder as an image run directory; returns its path."""
    run_dir = Path(run_dir)
    check_target(run_dir, force)
    model, names = import_vit(hf_dir)
    cfg = model.config
    mean, std = _normalisation(Path(hf_dir), cfg.in_channels)
    recipe = {"task": "image_classification", "model": {"name": "vit", **to_dict(cfg)}, "seed": 0,
              "data": {"source": "folder", "path": None, "image_size": cfg.image_size, "channels": cfg.in_channels}}
    info = {"task": "image_classification", "family": "vit", "model": to_dict(cfg), "class_names": names,
            "channels": cfg.in_channels, "image_size": [cfg.image_size, cfg.image_size], "fixed_size": True,
            "mean": mean, "std": std, "parameters": sum(p.numel() for p in model.parameters()),
            "source": {"hugging_face": str(hf_dir)}}
    with staged_dir(run_dir, force) as tmp:
        (tmp / "config.yaml").write_text(dump_yaml(recipe), encoding="utf-8")
        (tmp / VISION_INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")
        (tmp / "labels.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
        save_model(model, str(tmp / "model.safetensors"))
    return run_dir


def _normalisation(hf_dir: Path, channels: int) -> tuple[list[float], list[float]]:
    file = hf_dir / "preprocessor_config.json"
    if not file.is_file():
        return [HF_VIT_DEFAULT_NORM] * channels, [HF_VIT_DEFAULT_NORM] * channels
    processor = read_json(file)
    mean = processor.get("image_mean", [HF_VIT_DEFAULT_NORM] * channels)
    std = processor.get("image_std", [HF_VIT_DEFAULT_NORM] * channels)
    if len(mean) != channels or len(std) != channels:
        raise CheckpointError(f"{file}: image_mean / image_std need {channels} values (one per channel)")
    return [float(m) for m in mean], [float(s) for s in std]
