"""Adversarial training on pixels (vision/adversarial.py): eps = 0 is clean training, FGSM is
clip(x + eps sign(g)) by hand, PGD matches explain/perturbation.py's attack in pixel space, BatchNorm
statistics move only with the clean pass, and a run with the option resumes bit-identically."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from torch import nn

from conftest import TINY_IMAGE_RECIPE
from fromzero.config import InvalidValue
from fromzero.errors import FromZeroError
from fromzero.explain.perturbation import pgd
from fromzero.objectives.image_classification import ImageClassification
from fromzero.train.loggers import read_metrics
from fromzero.vision.adversarial import ImageAdversarialConfig, ImageAdversarialObjective
from fromzero.vision.recipe import load_vision_recipe
from fromzero.vision.runner import train_vision

MEAN, STD = [0.3, 0.6], [0.2, 0.4]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))


def _batch() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(5, 2, 6, 6, generator=gen)
    x[0, 0, :2] = 0.0  # pixels on the border of [0, 1] must stay inside
    x[1, 1, :2] = 1.0
    mean, std = torch.tensor(MEAN).view(1, -1, 1, 1), torch.tensor(STD).view(1, -1, 1, 1)
    return {"pixels": (x - mean) / std, "labels": torch.tensor([0, 1, 2, 3, 1])}, x


def _pixel_loss(model: nn.Module, labels: torch.Tensor):
    mean, std = torch.tensor(MEAN).view(1, -1, 1, 1), torch.tensor(STD).view(1, -1, 1, 1)
    return lambda x: F.cross_entropy(model((x - mean) / std), labels)


def _adv(method: str, eps: float, **kw) -> ImageAdversarialObjective:
    return ImageAdversarialObjective(ImageClassification(), ImageAdversarialConfig(method=method, eps=eps, **kw),
                                     MEAN, STD)


def test_eps_zero_gives_the_clean_loss_and_gradients() -> None:
    batch, _ = _batch()
    model = _model()
    clean = ImageClassification()(model, batch)
    clean.loss.backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = _adv("pgd", 0.0)(model, batch)
    out.loss.backward()
    assert out.loss.item() == clean.loss.item()
    for p, g in zip(model.parameters(), ref, strict=True):
        assert torch.equal(p.grad, g)
    assert out.metrics["adv_loss"] == pytest.approx(float(clean.metrics["loss"]))


def test_fgsm_is_eps_sign_of_the_pixel_gradient_clipped_to_the_unit_range() -> None:
    batch, x = _batch()
    model, eps = _model(), 0.05
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_pixel_loss(model, batch["labels"])(xg), xg)
    by_hand = (x + eps * g.sign()).clamp(0, 1)
    adv = _adv("fgm", eps).perturbed(model, batch) * torch.tensor(STD).view(1, -1, 1, 1) + \
        torch.tensor(MEAN).view(1, -1, 1, 1)
    assert torch.allclose(adv, by_hand, atol=1e-6)
    assert (g != 0).any() and adv.min() >= -1e-6 and adv.max() <= 1 + 1e-6
    assert (adv - x).abs().max() == pytest.approx(eps, abs=1e-6)


def test_pgd_matches_the_evaluation_attack() -> None:
    batch, x = _batch()
    model, eps = _model(), 0.04
    ref = pgd(_pixel_loss(model, batch["labels"]), x, eps, 4, clip=lambda p: p.clamp(0, 1))
    adv = _adv("pgd", eps, steps=4).perturbed(model, batch) * torch.tensor(STD).view(1, -1, 1, 1) + \
        torch.tensor(MEAN).view(1, -1, 1, 1)
    assert torch.allclose(adv, ref, atol=1e-5)
    assert not torch.allclose(ref, x, atol=1e-3)


def test_only_the_clean_pass_moves_batchnorm_statistics() -> None:
    batch, _ = _batch()
    plain, adv = _model(), _model()
    ImageClassification()(plain, batch)
    _adv("pgd", 0.1, steps=3)(adv, batch)
    for a, b in zip(plain.buffers(), adv.buffers(), strict=True):
        assert torch.equal(a, b)


def test_the_option_needs_image_classification() -> None:
    with pytest.raises((InvalidValue, FromZeroError), match="adversarial"):
        load_vision_recipe(None, ["task=denoising", "adversarial.method=fgm"])
    with pytest.raises((InvalidValue, FromZeroError), match="eps"):
        load_vision_recipe(None, ["adversarial.method=pgd", "adversarial.eps=2"])


class _Stop(Exception):
    pass


def _stop_after(calls: int):
    """A wrap_objective that kills training on its ``calls``-th training call (after a checkpoint)."""
    def wrap(objective):
        count = [0]

        def run(model, batch):
            if torch.is_grad_enabled():
                count[0] += 1
                if count[0] > calls:
                    raise _Stop
            return objective(model, batch)
        return run
    return wrap


def test_a_run_with_the_option_resumes_bit_identically(tmp_path: Path) -> None:
    recipe = {**TINY_IMAGE_RECIPE, "adversarial": {"method": "pgd", "eps": 0.05, "steps": 2},
              "train": {**TINY_IMAGE_RECIPE["train"], "max_steps": 6, "ckpt_every": 3, "log_every": 1,
                        "eval_every": 3, "keep_last": 0}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    train_vision(path, out=tmp_path / "whole", progress=False)
    with pytest.raises(_Stop):
        train_vision(path, out=tmp_path / "cut", progress=False, wrap_objective=_stop_after(4))
    train_vision(path, out=tmp_path / "cut", progress=False, resume=True)
    whole, cut = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("whole", "cut"))
    assert any("running_mean" in k for k in whole)
    for name in whole:
        assert torch.equal(whole[name], cut[name]), name
    losses = {d: {r["step"]: r["loss"] for r in read_metrics(tmp_path / d / "metrics.jsonl") if "loss" in r}
              for d in ("whole", "cut")}
    assert losses["whole"] == losses["cut"] and len(losses["whole"]) == 6
    clean = train_vision(path, ["adversarial.method=none", "train.max_steps=1"], out=tmp_path / "clean",
                         progress=False).run_dir  # the runner did wrap the objective: step 1's loss differs
    first = {r["step"]: r["loss"] for r in read_metrics(clean / "metrics.jsonl") if "loss" in r}[1]
    assert losses["whole"][1] > first


def test_a_run_saved_before_newer_recipe_keys_still_resumes(tmp_path: Path) -> None:
    """config.yaml of a run started before `data.fold` / `adversarial` existed lacks them: resume compares the
    sections through the recipe loader, so the missing keys count at their defaults."""
    recipe = {**TINY_IMAGE_RECIPE, "train": {**TINY_IMAGE_RECIPE["train"], "max_steps": 6, "ckpt_every": 3,
                                             "eval_every": 3, "keep_last": 0}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(_Stop):
        train_vision(path, out=tmp_path / "cut", progress=False, wrap_objective=_stop_after(4))
    saved = yaml.safe_load((tmp_path / "cut" / "config.yaml").read_text())
    assert "fold" in saved["data"] and "adversarial" in saved
    del saved["data"]["fold"], saved["adversarial"]  # as an older fromzero wrote it
    (tmp_path / "cut" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert train_vision(path, out=tmp_path / "cut", progress=False, resume=True).train.step == 6
