"""Segmentation and denoising objectives against hand computations, torch's cross-entropy and
scikit-image's PSNR."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio
from torch import nn

from fromzero.errors import ConfigError, DataError
from fromzero.objectives.denoising import Denoising
from fromzero.objectives.segmentation import Segmentation, soft_dice_loss


class FixedOutput(nn.Module):
    """A 'model' that returns a given tensor whatever its input, so losses can be checked by hand."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = nn.Parameter(output.clone())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.output


def _segmentation_case() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 5, generator=gen)
    masks = torch.randint(0, 4, (2, 3, 5), generator=gen)
    masks[0, 0, :3] = 255  # ignored pixels
    masks[1, 2, 4] = 255
    return logits, masks


def test_cross_entropy_and_pixel_accuracy_by_hand_with_ignored_pixels() -> None:
    logits, masks = _segmentation_case()
    out = Segmentation()(FixedOutput(logits), {"pixels": torch.zeros(2, 1, 3, 5), "masks": masks})
    total, right, count = 0.0, 0, 0
    for b in range(2):
        for i in range(3):
            for j in range(5):
                y = int(masks[b, i, j])
                if y == 255:
                    continue
                row = logits[b, :, i, j].tolist()
                total -= row[y] - math.log(sum(math.exp(v) for v in row))
                right += int(max(range(4), key=lambda k, row=row: row[k]) == y)
                count += 1
    assert count == 26
    assert out.loss.item() == pytest.approx(total / count, rel=1e-6)
    assert out.loss.item() == pytest.approx(F.cross_entropy(logits, masks, ignore_index=255).item(), rel=1e-6)
    assert out.metrics["pixel_accuracy"].item() == pytest.approx(right / count)
    assert out.weight == 2
    out.loss.backward()  # the loss is differentiable end to end


def test_soft_dice_on_a_2x2_case_by_hand() -> None:
    # Two classes; softmax(log p) = p, so the probabilities are exact. Class-1 probabilities per pixel:
    # 0.8 0.4 / 0.1 0.7; mask 1 0 / 0 ignore. Over the three scored pixels:
    #   class 1: sum p g = 0.8, sum p = 1.3, sum g = 1 -> (2 * 0.8 + 1) / (1.3 + 1 + 1) = 2.6 / 3.3
    #   class 0: sum p g = 0.6 + 0.9 = 1.5, sum p = 1.7, sum g = 2 -> (3 + 1) / (3.7 + 1) = 4 / 4.7
    p1 = torch.tensor([[0.8, 0.4], [0.1, 0.7]])
    logits = torch.stack([1 - p1, p1]).log().unsqueeze(0)  # (1, 2, 2, 2)
    masks = torch.tensor([[[1, 0], [0, 255]]])
    expected = 1 - (2.6 / 3.3 + 4 / 4.7) / 2
    assert soft_dice_loss(logits, masks, masks != 255).item() == pytest.approx(expected, rel=1e-6)
    out = Segmentation(dice_weight=0.5)(FixedOutput(logits), {"pixels": torch.zeros(1, 1, 2, 2), "masks": masks})
    ce = -(math.log(0.8) + math.log(0.6) + math.log(0.9)) / 3
    assert out.metrics["dice_loss"].item() == pytest.approx(expected, rel=1e-6)
    assert out.metrics["cross_entropy"].item() == pytest.approx(ce, rel=1e-6)
    assert out.loss.item() == pytest.approx(ce + 0.5 * expected, rel=1e-6)
    assert out.metrics["pixel_accuracy"].item() == pytest.approx(1.0)  # 0.8 -> 1, 0.4 -> 0, 0.1 -> 0


def test_perfect_prediction_has_dice_near_zero() -> None:
    masks = torch.tensor([[[0, 1, 2], [2, 2, 0]]])
    logits = F.one_hot(masks, 3).permute(0, 3, 1, 2).float() * 50.0  # softmax ~ one-hot
    assert soft_dice_loss(logits, masks, torch.ones_like(masks, dtype=torch.bool)).item() == pytest.approx(0, abs=1e-6)


def test_all_ignored_batch_gives_a_finite_zero_loss() -> None:
    model = FixedOutput(torch.randn(1, 3, 2, 2))
    out = Segmentation(dice_weight=1.0)(model, {"pixels": torch.zeros(1, 1, 2, 2),
                                                "masks": torch.full((1, 2, 2), 255)})
    assert out.loss.item() == 0.0 and out.metrics["pixel_accuracy"].item() == 0.0
    out.loss.backward()
    assert torch.isfinite(model.output.grad).all()


def test_segmentation_bad_inputs_are_one_line_errors() -> None:
    logits = torch.randn(1, 3, 2, 2)
    with pytest.raises(DataError, match="class 5.*num_classes to 6"):
        Segmentation()(FixedOutput(logits), {"pixels": logits, "masks": torch.tensor([[[0, 5], [1, 2]]])})
    with pytest.raises(DataError, match="shape"):
        Segmentation()(FixedOutput(logits), {"pixels": logits, "masks": torch.zeros(1, 3, 2, dtype=torch.long)})
    with pytest.raises(ConfigError, match="dice_weight"):
        Segmentation(dice_weight=-1.0)


def test_denoising_losses_by_hand() -> None:
    estimate = torch.tensor([[[[0.2, 0.9], [0.5, 0.0]]]])
    target = torch.tensor([[[[0.0, 1.0], [0.5, 0.4]]]])
    batch = {"pixels": torch.zeros(1, 1, 2, 2), "target": target}
    mse = Denoising("mse")(FixedOutput(estimate), batch)
    l1 = Denoising("l1")(FixedOutput(estimate), batch)
    assert mse.loss.item() == pytest.approx((0.04 + 0.01 + 0 + 0.16) / 4)
    assert l1.loss.item() == pytest.approx((0.2 + 0.1 + 0 + 0.4) / 4)
    assert mse.metrics["psnr"].item() == pytest.approx(10 * math.log10(4 / 0.21), rel=1e-5)
    assert mse.weight == l1.weight == 1
    with pytest.raises(ConfigError, match="loss"):
        Denoising("huber")  # type: ignore[arg-type]


def test_psnr_equals_scikit_image_per_image_then_averaged() -> None:
    gen = torch.Generator().manual_seed(3)
    target = torch.rand(4, 3, 9, 7, generator=gen)
    estimate = target + 0.1 * torch.randn(target.shape, generator=gen)  # some values leave [0, 1]
    assert (estimate < 0).any() and (estimate > 1).any()
    out = Denoising()(FixedOutput(estimate), {"pixels": torch.zeros_like(target), "target": target})
    saved = estimate.clamp(0, 1).double().numpy()  # the image one would save
    reference = [peak_signal_noise_ratio(target[b].double().numpy(), saved[b], data_range=1.0) for b in range(4)]
    assert out.metrics["psnr"].item() == pytest.approx(sum(reference) / 4, rel=1e-5)
    assert out.weight == 4


def test_psnr_of_an_exact_image_is_capped_at_100_db() -> None:
    target = torch.rand(2, 1, 4, 4)
    estimate = target.clone()
    estimate[1] += 0.1
    out = Denoising()(FixedOutput(estimate), {"pixels": target, "target": target})
    psnr1 = 10 * math.log10(1 / F.mse_loss(estimate[1].clamp(0, 1), target[1]).item())
    assert out.metrics["psnr"].item() == pytest.approx((100.0 + psnr1) / 2, rel=1e-5)


def test_denoising_shape_mismatch_is_a_data_error() -> None:
    with pytest.raises(DataError, match="shape"):
        Denoising()(FixedOutput(torch.zeros(1, 1, 4, 4)), {"pixels": torch.zeros(1, 1, 4, 4),
                                                            "target": torch.zeros(1, 3, 4, 4)})
