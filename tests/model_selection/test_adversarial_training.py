"""Adversarial training (finetune/adversarial.py): FGM's perturbation and loss worked out by hand on a linear
sum-pooling classifier, eps = 0 is exactly clean training, PGD stays in its ball, recipe keys are validated,
and a fine-tune with the option trains (through the wrapper) and resumes bit-identically."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from fromzero.errors import ConfigError
from fromzero.finetune.adversarial import AdversarialConfig, AdversarialObjective, project
from fromzero.finetune.recipe import load_finetune_recipe
from fromzero.objectives import SequenceClassification
from model_selection.tiny_runs import tiny_recipe, write_recipe


class SumPool(nn.Module):
    """logits = W sum_t m_t e_t + b, e = backbone.tok_emb(ids): every gradient has a closed form."""

    problem = "single_label"

    def __init__(self, vocab: int = 7, dim: int = 4, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.backbone = nn.Module()
        self.backbone.tok_emb = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).float())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        e = self.backbone.tok_emb(input_ids)
        return self.head((e * attention_mask.unsqueeze(-1).float()).sum(1))


BATCH = {"input_ids": torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]),
         "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]), "labels": torch.tensor([2, 0])}


def hand_fgm(model: SumPool, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(r, clean loss, adversarial loss) by the closed form: dL/de_bt = m_bt W^T (p_b - y_b) / B."""
    W, m = model.head.weight.detach(), BATCH["attention_mask"].float()
    with torch.no_grad():
        z = model(BATCH["input_ids"], BATCH["attention_mask"])
        p, y = torch.softmax(z, -1), F.one_hot(BATCH["labels"], 3).float()
        g = m[:, :, None] * ((p - y) @ W / 2)[:, None, :]  # (B, T, C)
        r = eps * g / g.flatten(1).norm(dim=1)[:, None, None]
        z_adv = z + (m[:, :, None] * r).sum(1) @ W.T
        return r, F.cross_entropy(z, BATCH["labels"]), F.cross_entropy(z_adv, BATCH["labels"])


def spied(objective: AdversarialObjective) -> list[torch.Tensor]:
    """Record every perturbation the wrapper computes."""
    seen, inner = [], objective.perturbation

    def record(*args):
        seen.append(inner(*args))
        return seen[-1]

    objective.perturbation = record
    return seen


def test_fgm_perturbation_and_loss_equal_the_hand_computation() -> None:
    model, eps, w = SumPool(), 0.7, 0.5
    objective = AdversarialObjective(SequenceClassification(), AdversarialConfig(method="fgm", eps=eps, weight=w))
    seen = spied(objective)
    out = objective(model, BATCH)
    r, clean, adv = hand_fgm(model, eps)
    torch.testing.assert_close(seen[0], r, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(seen[0].flatten(1).norm(dim=1), torch.full((2,), eps))  # on the sphere
    assert torch.all(seen[0][BATCH["attention_mask"] == 0] == 0)  # padding never moves
    torch.testing.assert_close(out.metrics["loss"], clean)
    torch.testing.assert_close(out.metrics["adv_loss"], adv)
    torch.testing.assert_close(out.loss, (clean + w * adv) / (1 + w))
    assert adv > clean  # the step goes uphill


def test_parameter_gradients_treat_the_perturbation_as_a_constant() -> None:
    model, eps = SumPool(), 0.4
    objective = AdversarialObjective(SequenceClassification(), AdversarialConfig(method="fgm", eps=eps))
    objective(model, BATCH).loss.backward()
    got = model.head.weight.grad.clone()
    r, _, _ = hand_fgm(model, eps)
    reference = SumPool()  # the same weights: L = (L(e) + L(e + r)) / 2 with r fixed
    m = BATCH["attention_mask"].float()[:, :, None]
    for shift in (0, r):
        e = reference.backbone.tok_emb(BATCH["input_ids"])
        logits = reference.head((m * (e + shift)).sum(1))
        (F.cross_entropy(logits, BATCH["labels"]) / 2).backward()
    torch.testing.assert_close(got, reference.head.weight.grad)


@pytest.mark.parametrize("method", ["fgm", "pgd"])
def test_eps_zero_is_exactly_clean_training(method: str) -> None:
    clean_model, adv_model = SumPool(seed=3), SumPool(seed=3)
    clean = SequenceClassification()(clean_model, BATCH)
    clean.loss.backward()
    out = AdversarialObjective(SequenceClassification(), AdversarialConfig(method=method, eps=0.0))(adv_model, BATCH)
    out.loss.backward()
    assert torch.equal(out.loss, clean.loss)
    for (name, a), b in zip(adv_model.named_parameters(), clean_model.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name


def test_pgd_stays_in_the_ball_and_one_step_of_eps_is_fgm() -> None:
    model = SumPool(seed=1)
    pgd = AdversarialObjective(SequenceClassification(), AdversarialConfig(method="pgd", eps=0.3, steps=4,
                                                                           alpha=0.2))
    seen = spied(pgd)
    out = pgd(model, BATCH)
    norms = seen[0].flatten(1).norm(dim=1)
    assert torch.all(norms <= 0.3 + 1e-6) and torch.all(norms > 0.29)  # steps of 0.2 reach the sphere
    fgm_out = AdversarialObjective(SequenceClassification(), AdversarialConfig(method="fgm", eps=0.3))(model, BATCH)
    one = AdversarialObjective(SequenceClassification(), AdversarialConfig(method="pgd", eps=0.3, steps=1,
                                                                           alpha=0.3))(model, BATCH)
    assert torch.equal(one.loss, fgm_out.loss)
    assert out.metrics["adv_loss"] >= fgm_out.metrics["adv_loss"] - 1e-6  # more steps climb at least as high


def test_project_scales_only_what_lies_outside() -> None:
    delta = torch.tensor([[[3.0, 4.0]], [[0.3, 0.4]]])  # norms 5 and 0.5
    torch.testing.assert_close(project(delta, 1.0), torch.tensor([[[0.6, 0.8]], [[0.3, 0.4]]]))


def test_frozen_embeddings_still_get_a_perturbation() -> None:
    model = SumPool()
    model.backbone.tok_emb.weight.requires_grad_(False)  # LoRA / partial fine-tuning
    objective = AdversarialObjective(SequenceClassification(), AdversarialConfig(method="pgd", eps=0.5))
    seen = spied(objective)
    objective(model, BATCH).loss.backward()
    assert seen[0].abs().sum() > 0 and model.head.weight.grad is not None


def test_evaluation_runs_the_clean_objective() -> None:
    model = SumPool()
    with torch.no_grad():
        out = AdversarialObjective(SequenceClassification(), AdversarialConfig(method="fgm", eps=1.0))(model, BATCH)
    assert "adv_loss" not in out.metrics
    assert torch.equal(out.loss, SequenceClassification()(model, BATCH).loss)


@pytest.mark.parametrize(("changes", "key"), [
    ({"adversarial": {"method": "fgm", "steps": 3}}, "adversarial.steps"),
    ({"adversarial": {"method": "pgd", "eps": -1}}, "adversarial.eps"),
    ({"adversarial": {"method": "pgd", "epss": 1}}, "did you mean 'adversarial.eps'"),
    ({"adversarial": {"method": "fgsm"}}, "adversarial.method"),
    ({"adversarial": {"method": "fgm"}, "select_metric": "bleu",
      "task": {"kind": "seq2seq", "train": "x", "validation": "y"}}, "adversarial.method"),
])
def test_recipe_keys_are_validated(changes: dict, key: str, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(tmp_path, {"train": tmp_path / "t.jsonl",
                                                                      "validation": tmp_path / "v.jsonl"}, **changes))
    with pytest.raises(ConfigError, match=key):
        load_finetune_recipe(recipe)


class Interrupted(Exception):
    """Stands in for a kill, raised out of the evaluation hook."""


def test_a_run_with_the_option_trains_through_the_wrapper_and_resumes(tiny_run: Path, topic_files, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from fromzero.eval.task_metrics import score_outputs
    from fromzero.finetune.runner import finetune

    recipe = write_recipe(tmp_path / "adv.yaml", tiny_recipe(
        tiny_run, topic_files, adversarial={"method": "pgd", "eps": 0.5, "steps": 2},
        train={"max_steps": 6, "batch_size": 8, "threads": 1, "log_every": 1, "eval_every": 2, "eval_batches": 1,
               "ckpt_every": 2, "keep_last": 1}))
    calls = []
    original = AdversarialObjective.__call__

    def counted(self, model, batch):
        calls.append(torch.is_grad_enabled())
        return original(self, model, batch)

    monkeypatch.setattr(AdversarialObjective, "__call__", counted)
    reference = finetune(recipe, out=tmp_path / "reference", progress=False)
    assert calls.count(True) >= 6  # every training step went through the wrapper

    evaluations = []

    def stop_at_second(outputs):
        evaluations.append(1)
        if len(evaluations) == 2:
            raise Interrupted
        return score_outputs(outputs)

    with pytest.raises(Interrupted):
        finetune(recipe, out=tmp_path / "run", progress=False, scorer=stop_at_second)
    resumed = finetune(recipe, out=tmp_path / "run", progress=False, resume=True)
    assert resumed.info["resumed_from_step"] in (2, 4)
    want, got = load_file(str(reference.run_dir / "model.safetensors")), load_file(str(tmp_path / "run" /
                                                                                       "model.safetensors"))
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert resumed.info["best_validation"] == reference.info["best_validation"]
