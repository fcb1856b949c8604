"""Which validation metrics a fine-tune may select on (by task kind and problem) and in which direction the
Trainer reads them: loss, mse and mae are minimised, everything else maximised, end to end through finetune()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fromzero.errors import ConfigError
from fromzero.eval.task_metrics import score_outputs
from fromzero.finetune.recipe import load_finetune_recipe
from fromzero.finetune.runner import finetune
from fromzero.train.trainer import lower_is_better
from toy_data import make_topic_rows

WORDS = {"low": ["awful", "bad"], "mid": ["fine", "okay"], "high": ["great", "superb"]}
FILLER = ["the", "film", "was", "quite", "really", "very"]


@pytest.mark.parametrize(("metric", "lower"), [
    ("val_loss", True), ("val_mse", True), ("val_mae", True), ("val_mlm_loss", True), ("val_ppl", True),
    ("val_pearson", False), ("val_spearman", False), ("val_r2", False), ("val_f1_macro", False),
    ("val_accuracy", False), ("val_roc_auc_micro", False), ("val_subset_accuracy", False),
])
def test_direction_of_each_metric(metric: str, lower: bool) -> None:
    assert lower_is_better(metric) is lower


@pytest.fixture(scope="module")
def regression_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("regression")
    files = {}
    for split, n, seed in (("train", 24, 0), ("validation", 9, 1), ("test", 9, 2)):
        files[split] = folder / f"{split}.jsonl"
        rows = make_topic_rows(n, seed, WORDS, FILLER, 3, numeric=True)
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return files


def _recipe(tmp: Path, base: Path, files: dict[str, Path], problem: str, select: str) -> Path:
    recipe = {"base": str(base), "select_metric": select,
              "task": {"problem": problem, "max_len": 24, **{s: str(p) for s, p in files.items()}},
              "train": {"max_steps": 6, "batch_size": 8, "threads": 1, "eval_every": 2, "eval_batches": 1},
              "optim": {"lr": 1e-3, "warmup_steps": 0}}
    path = tmp / f"{problem}_{select}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.mark.parametrize(("problem", "good", "bad"), [
    ("regression", ["mse", "mae", "r2", "pearson", "spearman", "loss"], ["f1_macro", "accuracy"]),
    ("multi_label", ["subset_accuracy", "f1_macro", "f1_micro", "roc_auc_micro", "loss"], ["accuracy", "mse"]),
    ("single_label", ["accuracy", "f1_macro", "f1_micro", "loss"], ["mse", "subset_accuracy"]),
])
def test_select_metric_choices_follow_the_problem(problem, good, bad, tmp_path: Path, regression_files) -> None:
    for metric in good:
        recipe = load_finetune_recipe(_recipe(tmp_path, tmp_path, regression_files, problem, metric))
        assert recipe.select_metric == metric
    for metric in bad:
        path = _recipe(tmp_path, tmp_path, regression_files, problem, metric)
        with pytest.raises(ConfigError, match=f"{path}: select_metric: '{metric}' is not one of .*\\({problem}\\)"):
            load_finetune_recipe(path)


class Scripted:
    """The real scores with ``metric`` replaced by a scripted value per evaluation."""

    def __init__(self, metric: str, values: list[float]) -> None:
        self.metric, self.values, self.calls = metric, values, 0

    def __call__(self, outputs) -> dict[str, float]:
        self.calls += 1
        return {**score_outputs(outputs), self.metric: self.values[self.calls - 1]}


@pytest.mark.parametrize(("metric", "values", "best_step"), [
    ("mse", [3.0, 1.0, 2.0], 4),       # lower is better: the step-4 evaluation wins
    ("mae", [0.5, 0.9, 0.7], 2),
    ("pearson", [0.1, 0.5, 0.3], 4),   # higher is better
    ("r2", [0.6, 0.2, 0.4], 2),
])
def test_best_step_follows_the_metric_direction(metric, values, best_step, tiny_run: Path, regression_files,
                                                 tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, tiny_run, regression_files, "regression", metric)
    result = finetune(recipe, scorer=Scripted(metric, values), out=tmp_path / "run", progress=False)
    assert result.info["best_step"] == best_step
    assert result.info["best_validation"][f"val_{metric}"] == values[best_step // 2 - 1]
    assert set(result.info["best_validation"]) >= {"val_mse", "val_mae", "val_r2", "val_pearson", "val_spearman"}
