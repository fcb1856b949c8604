"""``fromzero info``'s training-memory report: what one training step of a recipe or run holds (the planner is
``train/memory_plan.py``), term by term, with and without activation checkpointing, and the largest batch
that fits a memory budget."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fromzero.cli.options import positive_int
from fromzero.errors import ConfigError


def memory_size(text: str) -> int:
    """argparse type: 512MiB, 8GiB, 8GB, ... -> bytes."""
    from fromzero.train.memory_plan import parse_size

    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_memory_options(p: argparse.ArgumentParser) -> None:
    """The memory planner's assumptions (defaults: the recipe's train section)."""
    p.add_argument("--memory", type=memory_size, default=None, metavar="SIZE",
                   help="a memory budget per process (e.g. 8GiB, 512MiB, 16GB): print the largest batch that fits")
    p.add_argument("--nproc", type=positive_int, default=None, help="processes (ranks) to plan for (default 1)")
    p.add_argument("--parallel", choices=["none", "ddp", "fsdp"], default=None,
                   help="how ranks share the model (default: the recipe's train.parallel; ddp with --nproc > 1)")
    p.add_argument("--activation-checkpointing", action="store_true", default=None,
                   help="plan with each Transformer block recomputed in the backward pass")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="plan for fp32 or bf16 autocast (default: the recipe's, 'auto' resolved on this machine)")


def is_finetune_recipe_file(path: Path) -> bool:
    from fromzero.config import load_yaml
    from fromzero.runs import is_finetune_recipe_data

    return is_finetune_recipe_data(load_yaml(path))


# -- the memory planner (train/memory_plan.py) ----------------------------------------------------------
@dataclass
class TrainingTarget:
    """What one training step of a recipe or run runs: its model (built on ``device``: meta costs nothing),
    what one sequence asks of it, the objective (or fine-tuning task kind) and the train / optim sections."""

    model: Any
    workload: Any
    objective: str
    train: Any  # TrainConfig, or a run's train section (a dict)
    optim: Any
    notes: list[str] = field(default_factory=list)


def _get(section: Any, key: str, default: Any) -> Any:
    """A setting from a config dataclass or a run's dict (keys newer than the run fall back to ``default``)."""
    value = section.get(key, default) if isinstance(section, dict) else getattr(section, key, default)
    return default if value is None else value


def _num_labels(task: Any) -> tuple[int, list[str]]:
    """Outputs of the task head: counted from the training file's labels (2 with a note when unreadable)."""
    from fromzero.data.task_data import label_vocab, read_conll, read_text_classification, tag_vocab
    from fromzero.errors import FromZeroError

    if task.kind in ("sft", "seq2seq") or task.problem == "regression":
        return 1, []
    if task.kind == "span_qa":
        return 2, []
    try:
        if task.kind == "token_classification":
            return len(tag_vocab(read_conll(task.train))), []
        rows = read_text_classification(task.train, text_key=task.text_field, pair_key=task.pair_field,
                                        label_key=task.label_field, fmt=task.format)
        return len(label_vocab(rows)), []
    except (OSError, FromZeroError):
        return 2, [f"note: task.train {task.train} is not readable; the head is planned with 2 outputs"]


def _finetune_target(path: Path, overrides: list[str], device: str) -> TrainingTarget:
    import torch

    from fromzero.finetune.methods import apply_method, build_task_model
    from fromzero.finetune.recipe import load_finetune_recipe
    from fromzero.models import build_model
    from fromzero.runs import load_run
    from fromzero.train.memory_plan import Workload

    recipe = load_finetune_recipe(path, overrides)
    if not (Path(recipe.base) / "config.yaml").is_file():
        raise ConfigError(f"{path}: base: {recipe.base} is not a run directory (its config.yaml gives the model's "
                          "shape); create it with `fromzero import-hf` or `fromzero pretrain`")
    task = recipe.task
    labels, notes = _num_labels(task)
    with torch.device(device):
        model = build_task_model(build_model(load_run(recipe.base, with_weights=False).model_config), task, labels)
    summary, _ = apply_method(model, recipe)
    target = (task.max_target_len or task.max_len) if task.kind == "seq2seq" else 0
    notes.append(f"fine-tune: {recipe.method.name} on {recipe.base}; {summary}")
    return TrainingTarget(model, Workload(task.max_len, target_tokens=target, padding_mask=True), task.kind,
                          recipe.train, recipe.optim, notes)


def training_target(target: Path, overrides: list[str], device: str = "meta") -> TrainingTarget:
    """The model, workload and settings a training step of ``target`` (a recipe or a text run) runs."""
    import torch

    from fromzero.models import build_model, context_length
    from fromzero.train.memory_plan import workload_for

    if target.is_file() and is_finetune_recipe_file(target):
        return _finetune_target(target, overrides, device)
    if target.is_dir():
        from fromzero.runs import load_run

        run = load_run(target, with_weights=False)
        cfg, train, optim = run.model_config, run.config.get("train") or {}, run.config.get("optim") or {}
        objective = run.config.get("objective") or {}
        task = objective.get("name", "causal_lm")
    else:
        from fromzero.pretrain.recipe import load_recipe

        recipe = load_recipe(target, overrides)
        cfg, train, optim = recipe.model_config(file=str(target)), recipe.train, recipe.optim
        task, objective = recipe.task_name(str(target)), recipe.objective_config(str(target))
    with torch.device(device):
        model = build_model(cfg)
    workload = workload_for(task, objective, _get(train, "seq_len", 0) or context_length(cfg))
    return TrainingTarget(model, workload, task, train, optim)


def _plan_settings(t: TrainingTarget, args: argparse.Namespace) -> Any:
    import torch

    from fromzero.train.memory_plan import PlanSettings, optimizer_kernel
    from fromzero.train.precision import resolve_device, resolve_precision
    from fromzero.train.precision_probe import probe_model_shapes

    nproc, train = args.nproc or 1, t.train
    parallel = args.parallel or _get(train, "parallel", "none")
    parallel = ("ddp" if parallel in ("auto", "none") else parallel) if nproc > 1 else "none"
    batch = args.batch_size or _get(train, "batch_size", 1)
    if batch % nproc:
        raise ConfigError(f"--nproc {nproc}: a batch of {batch} sequences does not split evenly over {nproc} "
                          f"processes; plan a --batch-size that is a multiple of {nproc}")
    try:
        device = resolve_device(_get(train, "device", "auto"))
    except ConfigError:  # planning for a GPU from a machine without one
        device = torch.device("cuda")
    probe = probe_model_shapes(t.model, batch // nproc * t.workload.tokens) if device.type == "cpu" else None  # ~2 s
    precision = args.precision or (resolve_precision(_get(train, "precision", "auto"), device,
                                                     probe=(lambda: probe.fastest) if probe else None)
                                   if device.type != "cuda" or torch.cuda.is_available() else "bf16")
    name = _get(t.optim, "name", "adamw")
    return probe, PlanSettings(batch_size=batch, precision=precision, nproc=nproc, parallel=parallel,
                        activation_checkpointing=bool(args.activation_checkpointing
                                                      or _get(train, "activation_checkpointing", False)),
                        optimizer=name, optimizer_kernel=optimizer_kernel(name, device))


def _plan_lines(plan: Any, ckpt: Any, human: Any) -> list[str]:
    s = plan.settings
    where = (f"{s.nproc} processes ({s.parallel}), {s.rank_batch} sequences each" if s.nproc > 1
             else "1 process")
    b = lambda n: human(n, "B")  # noqa: E731
    lines = [f"training memory ({s.optimizer} {s.optimizer_kernel}, {s.precision}, batch {s.batch_size}, {where}"
             f"{', activation checkpointing' if s.activation_checkpointing else ''}; estimate per process):",
             f"  params {b(plan.params)} + grads {b(plan.grads)} + optimizer {b(plan.optimizer)} + activations "
             f"{b(plan.activations)} (loss buffers {b(plan.loss_buffers)})"
             + (f" + bf16 weight copies {b(plan.weight_copies)}" if plan.weight_copies else "")
             + f" -> peak ~{b(plan.peak)} at the {plan.phase} (temporary {b(plan.temporary)})"]
    if ckpt is not None:
        lines.append(f"  with activation checkpointing: activations {b(ckpt.activations)}, peak ~{b(ckpt.peak)}")
    return lines


def memory_report(target: Path, args: argparse.Namespace) -> list[str]:
    """The planner's lines: the peak term by term, with checkpointing, and the largest batch for --memory."""
    from dataclasses import replace

    from fromzero.train.cost_estimate import describe_model, human
    from fromzero.train.memory_plan import BATCH_LIMIT, largest_batch, plan_memory

    t = training_target(target, args.overrides)
    if hasattr(t.model, "fit_counts"):  # an n-gram model: counted, no gradient step to plan memory for
        return [*t.notes, "training memory: none planned (a counted model: its state is its count tables, "
                          "filled by one pass over the training tokens)"]
    spec, (probe, settings) = describe_model(t.model), _plan_settings(t, args)
    plan = plan_memory(spec, t.workload, settings)
    if probe is not None:
        t.notes.append(f"precision for these shapes on this machine: {probe.summary()}")
    with_ckpt = replace(settings, activation_checkpointing=True)
    ckpt = None if settings.activation_checkpointing else plan_memory(spec, t.workload, with_ckpt)
    lines = t.notes + _plan_lines(plan, ckpt, human)
    if args.memory is not None:
        plain = largest_batch(spec, t.workload, replace(settings, activation_checkpointing=False), args.memory)
        recompute = largest_batch(spec, t.workload, with_ckpt, args.memory)
        fits = lambda n: (f"batch {n:,}" + (" or more" if n >= BATCH_LIMIT * settings.nproc else "") if n  # noqa: E731
                          else "no batch (not even 1 per process)")
        lines.append(f"largest batch in {human(args.memory, 'B')} per process: {fits(plain)}; "
                     f"with activation checkpointing: {fits(recompute)}")
    return lines
