"""``fromzero cv``: k-fold cross-validation of a sequence-classification fine-tuning recipe (image
classification recipes: ``tune/image_cross_validation.py``).

The recipe's training file is cut into k folds (seeded): single-label tasks with scikit-learn's
``StratifiedKFold`` (each fold keeps the class proportions), multi-label and regression tasks with plain
``KFold``. Fold i trains on the other k - 1 folds and is tested on fold i; its validation split
(early stopping, best checkpoint) is fold i too (``validation: fold``, the default: the fold score is then
slightly optimistic, as the best step was chosen on it) or the recipe's own validation file
(``validation: recipe``). The recipe's test file is not used. Every fold is an ordinary fine-tune:

    OUT/splits/fold_<i>/train.jsonl, heldout.jsonl   the fold's data (JSON lines with the recipe's field names)
    OUT/fold_<i>/                                    its run directory (eval.json: the held-out fold's metrics)
    OUT/cv.json                                      per-fold metrics, mean and sample standard deviation

For each metric, mean = (1/k) sum_i m_i and std = sqrt(sum_i (m_i - mean)^2 / (k - 1)). ``resume`` keeps
finished folds, resumes an interrupted one from its checkpoint and trains the rest.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from fromzero.atomic import require_new_folder, write_text
from fromzero.config import load_yaml
from fromzero.data.task_data import TextExample, read_text_classification
from fromzero.errors import ConfigError
from fromzero.finetune.evaluate import evaluate_finetuned_run
from fromzero.finetune.recipe import FinetuneRecipe, TaskConfig, load_finetune_recipe
from fromzero.finetune.runner import finetune
from fromzero.progress import progress
from fromzero.runs import FINETUNE_INFO, is_vision_recipe_data, read_run_json
from fromzero.tune.cv_summary import CV_INFO, CVOptions, summarize
from fromzero.tune.image_cross_validation import cross_validate_images


def _read(task: TaskConfig, path: str) -> list[TextExample]:
    return read_text_classification(path, text_key=task.text_field, pair_key=task.pair_field,
                                    label_key=task.label_field, fmt=task.format)


def check_folds(examples: list[TextExample], folds: int, stratified: bool, file: str) -> None:
    """k >= 2, and at most the smallest class's size (stratified) or the number of examples."""
    if folds < 2:
        raise ConfigError(f"--folds: must be >= 2, got {folds}")
    if not stratified:
        if folds > len(examples):
            raise ConfigError(f"--folds {folds}: {file} has only {len(examples)} examples; use --folds <= "
                              f"{len(examples)}")
        return
    counts = Counter(str(e.label) for e in examples)
    label, smallest = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    if folds > smallest:
        raise ConfigError(f"--folds {folds}: class {label!r} has only {smallest} examples in {file}; every fold "
                          f"needs one of each class: use --folds <= {smallest} or add examples")


def fold_indices(examples: list[TextExample], folds: int, seed: int, stratified: bool
                 ) -> list[tuple[list[int], list[int]]]:
    """(train, held-out) example indices of each fold, in file order within each."""
    from sklearn.model_selection import KFold, StratifiedKFold

    index = list(range(len(examples)))
    if stratified:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        parts = splitter.split(index, [str(e.label) for e in examples])
    else:
        parts = KFold(n_splits=folds, shuffle=True, random_state=seed).split(index)
    return [(sorted(int(i) for i in tr), sorted(int(i) for i in te)) for tr, te in parts]


def write_examples(path: Path, examples: list[TextExample], task: TaskConfig) -> None:
    """Examples as JSON lines under the task's own field names (so the recipe reads them unchanged)."""
    rows = []
    for e in examples:
        row: dict[str, Any] = {task.text_field: e.text}
        if e.text_pair is not None:
            row[task.pair_field] = e.text_pair
        row[task.label_field] = list(e.label) if isinstance(e.label, tuple) else e.label
        rows.append(json.dumps(row, ensure_ascii=False) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(rows))


def _recipe(recipe_path: str | Path, overrides: list[str]) -> FinetuneRecipe:
    recipe = load_finetune_recipe(recipe_path, overrides)
    if recipe.task.kind != "sequence_classification":
        raise ConfigError(f"{recipe_path}: task.kind: cv supports sequence_classification recipes, got "
                          f"{recipe.task.kind}")
    return recipe


def _plan(recipe: FinetuneRecipe, opts: CVOptions, out: Path) -> tuple[list[list[str]], dict[str, Any]]:
    """Write the fold files; returns each fold's overrides and what cv.json records about the split."""
    task = recipe.task
    examples = _read(task, task.train)
    stratified = task.problem == "single_label"
    check_folds(examples, opts.folds, stratified, task.train)
    validation_rows = _read(task, task.validation) if opts.validation == "recipe" else None
    (out / "splits").mkdir(parents=True, exist_ok=True)  # nothing is written before the checks pass
    write_text(out / "splits" / "plan.json", json.dumps({"folds": opts.folds, "seed": opts.seed,
                                                        "validation": opts.validation}))
    fixed_validation = None
    if validation_rows is not None:
        fixed_validation = out / "splits" / "validation.jsonl"
        write_examples(fixed_validation, validation_rows, task)
    fold_overrides, sizes = [], []
    for i, (train, held) in enumerate(fold_indices(examples, opts.folds, opts.seed, stratified)):
        folder = out / "splits" / f"fold_{i}"
        write_examples(folder / "train.jsonl", [examples[j] for j in train], task)
        write_examples(folder / "heldout.jsonl", [examples[j] for j in held], task)
        validation = fixed_validation or folder / "heldout.jsonl"
        fold_overrides.append([f"--task.train={folder / 'train.jsonl'}", f"--task.validation={validation}",
                               f"--task.test={folder / 'heldout.jsonl'}", "--task.format=jsonl"])
        sizes.append({"train": len(train), "heldout": len(held)})
    split = {"splitter": "StratifiedKFold" if stratified else "KFold", "fold_sizes": sizes,
             "examples": len(examples)}
    return fold_overrides, split


def _check_out(out: Path, opts: CVOptions, recipe: FinetuneRecipe) -> None:
    """A new cross-validation needs a new folder; a resumed one the same folds, seed and validation choice."""
    if not (Path(recipe.base) / "config.yaml").is_file():
        raise ConfigError(f"base: {recipe.base} is not a run directory; create it with `fromzero import-hf` or "
                          "`fromzero pretrain`")
    plan = {"folds": opts.folds, "seed": opts.seed, "validation": opts.validation}
    plan_file = out / "splits" / "plan.json"
    if not opts.resume:
        require_new_folder(out, "choose another --out, or pass --resume to continue that cross-validation")
        return
    if not plan_file.is_file():
        raise ConfigError(f"{out}: nothing to resume (no splits/plan.json); run without --resume")
    saved = read_run_json(plan_file)
    if saved != plan:
        raise ConfigError(f"{plan_file}: this cross-validation was started with {saved}; --resume needs the same "
                          "--folds, --seed and --validation")


def _run_fold(recipe_path: str | Path, overrides: list[str], run_dir: Path, show: bool) -> dict[str, float]:
    """Train (or finish, or reuse) one fold's run and return its held-out metrics."""
    if not (run_dir / FINETUNE_INFO).is_file():
        resume = (run_dir / "config.yaml").is_file()  # an interrupted fold continues from its checkpoint
        finetune(recipe_path, overrides, out=run_dir, progress=show, resume=resume)
    eval_file = run_dir / "eval.json"
    saved = read_run_json(eval_file) if eval_file.is_file() else {}
    if "test" not in saved:
        saved = evaluate_finetuned_run(run_dir, progress=show)
    return saved["test"]["metrics"]


def cross_validate(recipe_path: str | Path, overrides: list[str] | None = None, opts: CVOptions = CVOptions(),
                   show: bool = True) -> dict[str, Any]:
    """Run every fold of ``recipe_path`` (with ``overrides``) and write OUT/cv.json; returns its content.
    A vision recipe goes to ``tune.image_cross_validation`` (folds of its training images)."""
    overrides = list(overrides or [])
    if is_vision_recipe_data(load_yaml(recipe_path)):
        return cross_validate_images(recipe_path, overrides, opts, show)
    recipe = _recipe(recipe_path, overrides)
    out = Path(opts.out) if opts.out else Path("runs") / f"cv_{Path(recipe_path).stem}"
    _check_out(out, opts, recipe)
    fold_overrides, split = _plan(recipe, opts, out)
    per_fold = []
    for i in progress(range(opts.folds), desc="cv folds", unit="fold", enabled=show):
        per_fold.append(_run_fold(recipe_path, [*overrides, *fold_overrides[i]], out / f"fold_{i}", show))
    summary = {"recipe": str(recipe_path), "overrides": overrides, "folds": opts.folds, "seed": opts.seed,
               "validation": opts.validation, **split, "runs": [str(out / f"fold_{i}") for i in range(opts.folds)],
               "per_fold": per_fold, "metrics": summarize(per_fold)}
    write_text(out / CV_INFO, json.dumps(summary, indent=1))
    return {**summary, "out": str(out)}
