"""Image objectives against hand computation: cross-entropy (plain, label-smoothed, mixup/cutmix form) and the MAE
loss on masked patches only (a 4x4 image in 2x2 patches, worked out on paper)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fromzero.models import create_model
from fromzero.objectives.image_classification import ImageClassification
from fromzero.objectives.masked_image import MaskedImageModeling


class FixedLogits(nn.Module):
    """A 'model' that returns given logits whatever the pixels (and records that it got the pixels)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())
        self.seen: torch.Tensor | None = None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        self.seen = pixels
        return self.logits


def _nll_by_hand(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    out = []
    for row, y in zip(logits.tolist(), labels.tolist(), strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        out.append(log_z - row[y])
    return out


def _batch(b: int = 5, k: int = 4) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(b, k, generator=gen) * 2
    labels = torch.tensor([0, 3, 1, 1, 2])
    return logits, {"pixels": torch.randn(b, 1, 4, 4, generator=gen), "labels": labels}


def test_cross_entropy_and_accuracy_equal_hand_computation():
    logits, batch = _batch()
    model = FixedLogits(logits)
    out = ImageClassification()(model, batch)
    assert model.seen is batch["pixels"]
    nll = _nll_by_hand(logits, batch["labels"])
    assert out.loss.item() == pytest.approx(sum(nll) / 5, abs=1e-6)
    assert out.loss.item() == pytest.approx(F.cross_entropy(logits, batch["labels"]).item(), abs=1e-6)
    correct = sum(int(max(range(4), key=lambda k: row[k]) == y)
                  for row, y in zip(logits.tolist(), batch["labels"].tolist(), strict=True))
    assert out.metrics["accuracy"].item() == pytest.approx(correct / 5)
    assert out.weight == 5 and out.loss.requires_grad and not out.metrics["loss"].requires_grad


def test_label_smoothing_mixes_the_target_with_the_uniform_distribution():
    logits, batch = _batch()
    eps = 0.1
    out = ImageClassification(label_smoothing=eps)(FixedLogits(logits), batch)
    total = 0.0
    for row, nll in zip(logits.tolist(), _nll_by_hand(logits, batch["labels"]), strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        uniform = sum(log_z - v for v in row) / len(row)  # CE against the uniform distribution
        total += (1 - eps) * nll + eps * uniform
    assert out.loss.item() == pytest.approx(total / 5, abs=1e-6)


def test_mixup_loss_is_the_lambda_weighted_sum_of_both_cross_entropies():
    logits, batch = _batch()
    batch["labels_b"] = torch.tensor([2, 2, 0, 3, 1])
    batch["mix_lambda"] = torch.tensor([1.0, 0.7, 0.5, 0.2, 0.0])
    out = ImageClassification()(FixedLogits(logits), batch)
    ce_a, ce_b = _nll_by_hand(logits, batch["labels"]), _nll_by_hand(logits, batch["labels_b"])
    lam = batch["mix_lambda"].tolist()
    expected = sum(la * a + (1 - la) * b for la, a, b in zip(lam, ce_a, ce_b, strict=True)) / 5
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    soft = batch["mix_lambda"][:, None] * F.one_hot(batch["labels"], 4) + \
        (1 - batch["mix_lambda"][:, None]) * F.one_hot(batch["labels_b"], 4)  # the mixed one-hot target
    assert out.loss.item() == pytest.approx(F.cross_entropy(logits, soft).item(), abs=1e-6)
    plain = ImageClassification()(FixedLogits(logits), {"pixels": batch["pixels"], "labels": batch["labels"]})
    assert out.metrics["accuracy"].item() == plain.metrics["accuracy"].item()  # accuracy is against `labels`


def test_label_smoothing_out_of_range_is_refused():
    with pytest.raises(ValueError, match="label_smoothing"):
        ImageClassification(label_smoothing=1.0)


class FixedPrediction(nn.Module):
    """The real MAE's masking and patchify, with a given prediction (so the loss can be worked out by hand)."""

    def __init__(self, norm_pix_loss: bool, value: float) -> None:
        super().__init__()
        self.mae = create_model("vit-mae", image_size=4, patch_size=2, in_channels=1, n_layer=1, n_head=1, n_embd=4,
                                decoder_dim=4, decoder_layers=1, decoder_heads=1, mask_ratio=0.5,
                                norm_pix_loss=norm_pix_loss)
        self.config, self.value = self.mae.config, value

    def patchify(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.mae.patchify(pixels)

    def forward(self, pixels: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, mask = self.mae.random_masking(noise)
        return torch.full((pixels.shape[0], 4, 4), self.value, requires_grad=True), mask


def _mae_batch() -> dict[str, torch.Tensor]:
    image = torch.arange(16.0).reshape(1, 1, 4, 4)  # patches: [0,1,4,5] [2,3,6,7] [8,9,12,13] [10,11,14,15]
    pixels = torch.cat([image, 2 * image])
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3],  # image 0 keeps patches 1, 3; hides 0, 2
                          [0.2, 0.8, 0.1, 0.9]])  # image 1 keeps 0, 2; hides 1, 3
    return {"pixels": pixels, "mask_noise": noise}


def test_mae_loss_counts_only_masked_patches_by_hand():
    out = MaskedImageModeling()(FixedPrediction(norm_pix_loss=False, value=1.0), _mae_batch())
    # (1 - t)^2 averaged per hidden patch: [0,1,4,5] -> 26/4, [8,9,12,13] -> 378/4 (image 0);
    # [4,6,12,14] -> 324/4, [20,22,28,30] -> 2372/4 (image 1); then the mean of the four
    assert out.loss.item() == pytest.approx((6.5 + 94.5 + 81.0 + 593.0) / 4)
    assert out.weight == 2 and set(out.metrics) == {"loss"}


def test_mae_loss_with_per_patch_normalised_targets_by_hand():
    out = MaskedImageModeling()(FixedPrediction(norm_pix_loss=True, value=0.0), _mae_batch())
    # every patch is (mean m) + (-2.5, -1.5, 1.5, 2.5) * s with s = 1 or 2: unbiased var 17/3 * s^2, so with a zero
    # prediction a patch's mean squared target is (17/4) s^2 / (17/3 s^2 + 1e-6)
    per = [(17 / 4) * s * s / ((17 / 3) * s * s + 1e-6) for s in (1, 1, 2, 2)]
    assert out.loss.item() == pytest.approx(sum(per) / 4, rel=1e-6)


def test_mae_loss_gradient_is_zero_on_visible_patches():
    model = FixedPrediction(norm_pix_loss=False, value=1.0)
    pred_holder = {}
    forward = model.forward

    def keep(pixels, noise):
        pred, mask = forward(pixels, noise)
        pred_holder["pred"], pred_holder["mask"] = pred, mask
        return pred, mask

    model.forward = keep
    MaskedImageModeling()(model, _mae_batch()).loss.backward()
    grad, mask = pred_holder["pred"].grad, pred_holder["mask"]
    assert torch.count_nonzero(grad[mask == 0]) == 0 and torch.count_nonzero(grad[mask == 1]) > 0
