"""Fine-tuning, end to end: base run + recipe -> head + method -> Trainer -> fine-tuned run directory.

    run_dir/config.yaml          the resolved recipe (``fromzero finetune run_dir/config.yaml`` repeats it)
    run_dir/finetune.json        what loading needs: backbone family and config, head, labels; plus the
                                 method's trainable-parameter count, memory and wall time
    run_dir/labels.txt           class (or tag) names, one per line, in class-id order
    run_dir/tokenizer.json       the base run's tokenizer
    run_dir/model.safetensors    the best checkpoint's weights (``backbone.*``, ``head.*``); LoRA: merged;
                                 seq2seq: the T5's own names, no head (``fromzero generate`` reads it)
    run_dir/samples_test.tsv     seq2seq only: source, reference and model output of every test example
    run_dir/adapter.safetensors  LoRA only: adapters + head, to apply on the base run's weights
    run_dir/data/                copies of the validation and test files (so eval needs nothing else)
    run_dir/metrics.jsonl, plots/
    run_dir/checkpoints/         while training only: resumable checkpoints (``--resume``; finetune/resume.py)

Under torchrun (``--nproc N``) every rank trains; rank 0 alone writes the run directory (the base
model's zero-shot SFT replies included) and the other ranks return once training is done.

Memory is measured the same way for every method, with ``resource.getrusage``:
``peak_rss_mb`` is the process's peak resident set size at the end of training
and ``train_rss_delta_mb`` that peak minus the resident size just before
training started (after the base model and data were loaded), i.e. what
training added: gradients, optimizer state, activations. Compare methods
run in separate processes (``benchmarks/finetune_table.py`` does).
"""

from __future__ import annotations

import importlib
import json
import resource
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from torch import nn

from fromzero.atomic import write_text, write_with
from fromzero.config import dump_yaml, to_dict
from fromzero.errors import ConfigError
from fromzero.eval.task_metrics import Scorer, score_outputs
from fromzero.finetune.adversarial import adversarial_objective
from fromzero.finetune.freeze import TrainableSummary
from fromzero.finetune.hooks import FinetuneHooks
from fromzero.finetune.lora import merge_lora, save_adapter
from fromzero.finetune.methods import apply_method, build_task_model, head_globs, task_objective
from fromzero.finetune.predict import task_outputs
from fromzero.finetune.recipe import FinetuneRecipe, load_finetune_recipe, recipe_dict
from fromzero.finetune.resume import check_can_resume
from fromzero.finetune.sft import check_sft_base, sft_run_info, write_samples
from fromzero.finetune.task_dataset import TaskData, decoder_start_id, load_task_data
from fromzero.models import build_model, family_of
from fromzero.runs import FINETUNE_INFO, Run, load_run, require_fresh_run_dir, run_dir_for
from fromzero.runs.report import write_report
from fromzero.train.checkpoint import latest_checkpoint
from fromzero.train.distributed import barrier, init_distributed, main_first
from fromzero.train.hooks import PrepareModel, WrapObjective
from fromzero.train.loggers import plot_losses, read_metrics
from fromzero.train.parallel import check_world_size
from fromzero.train.precision import resolve_device
from fromzero.train.trainer import Trainer, TrainResult


@dataclass
class FinetuneResult:
    run_dir: Path
    train: TrainResult
    trainable: TrainableSummary
    info: dict[str, Any]


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size in MiB (current from /proc where available, else the peak)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20, peak
    except (OSError, ValueError, IndexError):
        return peak, peak


def _check_inputs(recipe: FinetuneRecipe, file: str) -> None:
    """The base run and every data file exist, before any work (errors name the recipe key)."""
    if not (Path(recipe.base) / "config.yaml").is_file():
        raise ConfigError(f"{file}: base: {recipe.base} is not a run directory; create it with `fromzero import-hf "
                          "<hf checkpoint> <dir>` or `fromzero pretrain`")
    for key in ("train", "validation", "test"):
        value = getattr(recipe.task, key)
        if value and not Path(value).is_file():
            raise ConfigError(f"{file}: task.{key}: {value} not found (TREC: `fromzero prepare-task trec <dir>`)")


def _copy_eval_files(recipe: FinetuneRecipe, run_dir: Path) -> dict[str, str]:
    """Copy the validation and test files into the run directory (eval then needs only the run)."""
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    copied = {}
    for split, src in (("validation", recipe.task.validation), ("test", recipe.task.test or recipe.task.validation)):
        dst = run_dir / "data" / f"{split}{Path(src).suffix}"
        shutil.copyfile(src, dst)
        copied[split] = str(dst.relative_to(run_dir))
    return copied


def _save_weights(model: nn.Module, recipe: FinetuneRecipe, run_dir: Path) -> nn.Module:
    """Write model.safetensors (LoRA: adapter.safetensors first, then the merged model)."""
    if recipe.method.name == "lora":
        save_adapter(model, run_dir / "adapter.safetensors", recipe.method.lora, include=head_globs(recipe))
        merge_lora(model)
    write_with(run_dir / "model.safetensors", lambda tmp: save_model(model, str(tmp)))
    return model


def finetune(recipe_path: str | Path | None, overrides: list[str] | None = None, *, scorer: Scorer = score_outputs,
             out: str | Path | None = None, progress: bool = True, resume: bool = False,
             prepare_model: PrepareModel | None = None, wrap_objective: WrapObjective | None = None,
             ) -> FinetuneResult:
    """Run a fine-tuning recipe into a run directory; ``scorer`` turns validation outputs into metrics (the
    metric libraries' scores by default; tests pass scripted ones).

    ``prepare_model(model)`` is called once with the built model (base weights loaded, head attached) before
    the fine-tuning method and returns the model to train: compression loads pruned weights and registers
    gradient masks there, or returns a smaller student. ``wrap_objective(objective)`` returns what the
    Trainer trains (distillation wraps the task objective).

    ``resume`` continues an interrupted run in that directory from its latest checkpoint (see
    :mod:`fromzero.finetune.resume`): the same weights, best selection and metrics as if it had
    never stopped."""
    recipe = load_finetune_recipe(recipe_path, overrides)
    file = str(recipe_path or "<overrides>")
    run_dir = run_dir_for(out, recipe.out, recipe_path, "finetune")
    w = init_distributed(resolve_device(recipe.train.device))  # one process: nothing to join
    check_world_size(recipe.train, w.world_size)
    if resume:
        check_can_resume(run_dir, recipe_dict(recipe))
    else:
        require_fresh_run_dir(run_dir)
    barrier()  # every rank has checked the run directory before rank 0 writes into it
    _check_inputs(recipe, file)
    base = load_run(recipe.base)
    base.require_text("finetune")
    if base.finetuned and base.kind not in ("sft", "seq2seq"):  # those are plain GPT / T5 runs
        raise ConfigError(f"{file}: base: {recipe.base} is a fine-tuned {base.kind} run with a task head; start "
                          f"from the run it was fine-tuned from ({base.info.get('base')})")
    if recipe.task.kind == "sft":
        check_sft_base(base.model_config, recipe.task, file)
    torch.manual_seed(recipe.seed)
    data = load_task_data(recipe.task, base.tokenizer, decoder_start_id=decoder_start_id(base.model))
    backbone = build_model(base.model_config) if recipe.from_scratch else base.model  # seeded fresh init
    model = build_task_model(backbone, recipe.task, data.num_labels)
    if prepare_model is not None:
        model = prepare_model(model)
    # sft: the base model's zero-shot replies to the test prompts, before any training
    base_test = (task_outputs(model, data, "test", progress=progress)
                 if recipe.task.kind == "sft" and recipe.task.eval_base and w.is_main else None)
    summary, adapted = apply_method(model, recipe)
    info = main_first(lambda: _start_run_dir(run_dir, recipe, base, model, data, summary, adapted), dict)
    if base_test is not None:
        info["base_test_metrics"] = scorer(base_test)
        write_samples(run_dir / "samples_test_base.jsonl", base_test)
    return _train(run_dir, recipe, model, data, scorer, info, summary, progress, resume, wrap_objective)


def _start_run_dir(run_dir: Path, recipe: FinetuneRecipe, base: Run, model: nn.Module, data: TaskData,
                   summary: TrainableSummary, adapted: list[str]) -> dict[str, Any]:
    """Write config.yaml, tokenizer.json, labels.txt and the eval copies; return finetune.json's first part."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", dump_yaml(recipe_dict(recipe)))
    base.tokenizer.save(run_dir / "tokenizer.json")
    backbone_config = getattr(getattr(model, "backbone", model), "config", base.model_config)  # a student's own
    info = {"family": family_of(backbone_config).name, "model": to_dict(backbone_config),
            "kind": recipe.task.kind, "problem": recipe.task.problem, "num_labels": data.num_labels,
            "pooling": getattr(model, "pooling", None), "labels": data.vocab.labels if data.vocab else None,
            "files": _copy_eval_files(recipe, run_dir), "base": str(recipe.base), "method": recipe.method.name,
            "lora_layers": adapted, "trainable_parameters": summary.trainable, "total_parameters": summary.total,
            "trainable_percent": summary.percent, "truncation": {s: str(t) for s, t in data.truncation.items()},
            "preprocess": list(recipe.task.preprocess),  # serving applies the same text steps
            "preprocess_counts": {s: p.to_dict() for s, p in data.preprocess.items()}}
    if data.vocab is not None:
        write_text(run_dir / "labels.txt", "".join(f"{x}\n" for x in data.vocab.labels))
    if recipe.task.kind == "sft":
        info.update(sft_run_info(recipe.task, data))
    return info


def _train(run_dir: Path, recipe: FinetuneRecipe, model: nn.Module, data: TaskData, scorer: Scorer,
           info: dict[str, Any], summary: TrainableSummary, progress: bool, resume: bool,
           wrap_objective: WrapObjective | None = None) -> FinetuneResult:
    """Train with validation-metric selection, keep the best weights, write model.safetensors and finetune.json."""
    cfg = recipe.train
    val = data.batches("validation", cfg.batch_size)
    cfg = replace(cfg, eval_batches=min(cfg.eval_batches, len(val)))
    hooks = FinetuneHooks(model, data, scorer, recipe.task.eval_examples or None)
    objective = adversarial_objective(task_objective(recipe.task, data.weights()), recipe.adversarial)
    if wrap_objective is not None:
        objective = wrap_objective(objective)
    trainer = Trainer(model, objective,
                      data.batches("train", cfg.batch_size, recipe.seed, shuffle=True, grad_accum=cfg.grad_accum),
                      val, cfg, recipe.optim, run_dir, hooks=hooks, select_metric=f"val_{recipe.select_metric}",
                      progress=progress)
    importlib.import_module("torch.utils.tensorboard")  # the logger's import: not training memory
    rss_before, _ = _rss_mb()
    t0 = time.perf_counter()
    resumed = latest_checkpoint(trainer.ckpt_dir) if resume else None  # killed before the first: from step 0
    result = trainer.fit(resume=resumed is not None)
    wall = time.perf_counter() - t0
    _, peak = _rss_mb()
    hooks.restore_best()
    model = trainer.export_model()  # all ranks; under FSDP the whole model reaches rank 0 only
    if not trainer.world.is_main:  # rank 0 writes the run directory
        return FinetuneResult(run_dir, result, summary, info)
    _save_weights(model.cpu(), recipe, run_dir)
    plot_losses(run_dir / "metrics.jsonl", run_dir / "plots" / "loss.png", title=run_dir.name)
    info.update({"train_wall_s": wall, "peak_rss_mb": peak, "train_rss_delta_mb": max(peak - rss_before, 0.0),
                 "memory_method": "resource.getrusage ru_maxrss minus /proc/self/statm RSS before training",
                 "steps": result.step, "best_step": hooks.best_step, "stopped_early": result.stopped_early,
                 "select_metric": recipe.select_metric, "best_validation": _best_metrics(run_dir, hooks.best_step),
                 "device": str(trainer.device), "threads": torch.get_num_threads(),
                 "processes": trainer.world.world_size, "parallel": trainer.parallel,
                 "resumed_from_step": resumed.step if resumed else None})
    write_text(run_dir / FINETUNE_INFO, json.dumps(info, indent=1))
    shutil.rmtree(trainer.ckpt_dir, ignore_errors=True)  # the run is complete: checkpoints served resuming only
    write_report(run_dir)  # report.html; `fromzero eval` (test metrics, confusion matrix) rewrites it
    return FinetuneResult(run_dir, result, summary, info)


def _best_metrics(run_dir: Path, step: int | None) -> dict[str, float]:
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("step") == step and "val_loss" in r]
    return {k: v for k, v in rows[-1].items() if k.startswith("val_")} if rows else {}
