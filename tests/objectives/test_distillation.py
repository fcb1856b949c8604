"""The distillation loss against hand computation (naive loops over Python floats), its limits, and masking."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.loader import IGNORE_INDEX
from fromzero.objectives import CausalLM, SequenceClassification
from fromzero.objectives.distillation import Distillation, LiveTeacher, TeacherLogits, distillation_kl


class FixedLogits(nn.Module):
    """A 'model' whose output is its parameter: the logits, whatever the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, input_ids: torch.Tensor, **_: object) -> torch.Tensor:
        return self.logits


def fixed_teacher(logits: torch.Tensor):
    return lambda batch: TeacherLogits(logits)


def naive_softmax(row: list[float], t: float) -> list[float]:
    exps = [math.exp(z / t) for z in row]
    return [e / sum(exps) for e in exps]


def naive_kl(teacher: list[float], student: list[float], t: float) -> float:
    pt, ps = naive_softmax(teacher, t), naive_softmax(student, t)
    return sum(p * (math.log(p) - math.log(q)) for p, q in zip(pt, ps, strict=True))


def test_classification_loss_equals_hand_computed_value() -> None:
    student = [[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]]
    teacher = [[2.0, 0.0, 1.0], [0.0, 0.0, 4.0]]
    labels = [1, 2]
    alpha, t = 0.3, 2.0
    kd = sum(naive_kl(teacher[i], student[i], t) for i in range(2)) / 2
    ce = sum(-math.log(naive_softmax(student[i], 1.0)[labels[i]]) for i in range(2)) / 2
    expected = alpha * t * t * kd + (1 - alpha) * ce

    objective = Distillation(SequenceClassification(), fixed_teacher(torch.tensor(teacher)), alpha, t)
    batch = {"input_ids": torch.zeros(2, 4, dtype=torch.long), "labels": torch.tensor(labels)}
    out = objective(FixedLogits(torch.tensor(student)), batch)
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.metrics["kd_loss"].item() == pytest.approx(t * t * kd, rel=1e-6)
    assert out.metrics["ce_loss"].item() == pytest.approx(ce, rel=1e-6)
    assert out.metrics["loss"].item() == pytest.approx(ce, rel=1e-6)  # the task's loss: the hard-label CE
    assert out.metrics["accuracy"].item() == 1.0  # the task's metrics pass through: argmax [1, 2] = labels


def test_alpha_zero_temperature_one_is_plain_cross_entropy_exactly() -> None:
    torch.manual_seed(0)
    logits, teacher = torch.randn(4, 5), torch.randn(4, 5)
    labels = torch.tensor([0, 3, 1, 4])
    objective = Distillation(SequenceClassification(), fixed_teacher(teacher), alpha=0.0, temperature=1.0)
    out = objective(FixedLogits(logits), {"input_ids": torch.zeros(4, 2, dtype=torch.long), "labels": labels})
    assert torch.equal(out.loss, F.cross_entropy(logits, labels))


def test_alpha_one_gradient_is_zero_when_student_equals_teacher() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 6, 11)  # (B, T, V)
    labels = torch.randint(0, 11, (2, 6))
    model = FixedLogits(logits)
    objective = Distillation(CausalLM(), fixed_teacher(logits.clone()), alpha=1.0, temperature=3.0)
    out = objective(model, {"input_ids": torch.zeros(2, 6, dtype=torch.long), "labels": labels})
    out.loss.backward()
    assert out.loss.abs().item() < 1e-6
    assert model.logits.grad.abs().max().item() < 1e-7
    # and the gradient is not zero when they differ (the test above can fail)
    model.logits.grad = None
    Distillation(CausalLM(), fixed_teacher(logits + torch.randn_like(logits)), 1.0, 3.0)(
        model, {"input_ids": torch.zeros(2, 6, dtype=torch.long), "labels": labels}).loss.backward()
    assert model.logits.grad.abs().max().item() > 1e-4


def test_language_model_kd_is_per_token_and_skips_ignored_positions() -> None:
    torch.manual_seed(2)
    student, teacher = torch.randn(2, 4, 5), torch.randn(2, 4, 5)
    labels = torch.tensor([[1, 2, IGNORE_INDEX, IGNORE_INDEX], [0, IGNORE_INDEX, 4, 3]])
    loss_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])  # also drops (1, 3)
    t = 1.5
    scored = [(0, 0), (0, 1), (1, 0), (1, 2)]
    kd = sum(naive_kl(teacher[b, i].tolist(), student[b, i].tolist(), t) for b, i in scored) / len(scored)
    ce = sum(-math.log(naive_softmax(student[b, i].tolist(), 1.0)[labels[b, i]]) for b, i in scored) / len(scored)
    batch = {"input_ids": torch.zeros(2, 4, dtype=torch.long), "labels": labels, "loss_mask": loss_mask}
    out = Distillation(CausalLM(), fixed_teacher(teacher), 0.5, t)(FixedLogits(student), batch)
    assert out.loss.item() == pytest.approx(0.5 * t * t * kd + 0.5 * ce, rel=1e-6)
    assert out.weight == len(scored)
    # the teacher's logits at unscored positions change nothing
    noisy = teacher.clone()
    noisy[0, 2:], noisy[1, 1], noisy[1, 3] = 50.0, -50.0, 9.0
    again = Distillation(CausalLM(), fixed_teacher(noisy), 0.5, t)(FixedLogits(student), batch)
    assert torch.equal(again.loss, out.loss)


def test_top_k_teacher_is_a_kl_over_the_kept_classes() -> None:
    torch.manual_seed(3)
    student, teacher = torch.randn(3, 7), torch.randn(3, 7)
    values, indices = teacher.topk(3, dim=-1)
    t = 2.0
    expected = 0.0
    for n in range(3):
        pt = naive_softmax(values[n].tolist(), t)
        log_ps = [math.log(p) for p in naive_softmax(student[n].tolist(), t)]
        expected += sum(p * (math.log(p) - log_ps[int(j)]) for p, j in zip(pt, indices[n], strict=True)) / 3
    assert distillation_kl(student, TeacherLogits(values, indices), t).item() == pytest.approx(expected, rel=1e-6)
    full = LiveTeacher(FixedLogits(teacher), SequenceClassification(), top_k=7)(
        {"input_ids": torch.zeros(3, 1, dtype=torch.long), "labels": torch.zeros(3, dtype=torch.long)})
    assert full.indices is None and torch.equal(full.logits, teacher)  # k >= classes keeps them all, dense


class DropoutLM(nn.Sequential):
    def forward(self, input_ids: torch.Tensor, **_: object) -> torch.Tensor:
        return super().forward(input_ids)


def test_live_teacher_runs_in_eval_mode_without_gradients() -> None:
    teacher = DropoutLM(nn.Embedding(10, 4), nn.Dropout(0.9), nn.Linear(4, 10)).train()
    live = LiveTeacher(teacher, CausalLM())
    batch = {"input_ids": torch.randint(0, 10, (2, 5)), "labels": torch.randint(0, 10, (2, 5))}
    first, second = live(batch), live(batch)
    assert torch.equal(first.logits, second.logits)  # dropout off
    assert not first.logits.requires_grad


@pytest.mark.parametrize(("alpha", "temperature"), [(-0.1, 1.0), (1.1, 1.0), (0.5, 0.0), (0.5, -2.0)])
def test_out_of_range_settings_are_refused(alpha: float, temperature: float) -> None:
    with pytest.raises(ValueError):
        Distillation(CausalLM(), fixed_teacher(torch.zeros(1)), alpha, temperature)
