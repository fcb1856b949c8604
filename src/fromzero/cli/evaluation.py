"""``fromzero eval`` (held-out loss, objective metrics, a fine-tune's test metrics) and ``fromzero info``."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fromzero.cli.options import Handler, add_no_progress, positive_int
from fromzero.cli.reporting import eval_groups
from fromzero.cli.reports import print_finetune_eval
from fromzero.errors import ConfigError

if TYPE_CHECKING:  # loaded lazily: `fromzero --help` should not import torch
    from fromzero.runs import Run


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("eval", help="loss and perplexity on held-out text; test metrics of a fine-tuned run")
    p.add_argument("run_dir")
    p.add_argument("--data", nargs="+", help="files or folders (default: the run's validation split)")
    p.add_argument("--shards", help="another run's data/ folder (same tokenizer): score on its validation split, "
                                    "e.g. a base model on its continued-pretraining run's domain text")
    p.add_argument("--text-field", default="text")
    p.add_argument("--seq-len", type=positive_int, default=None,
                   help="tokens per window (default and maximum: the model's context)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--stride", type=positive_int, default=None,
                   help="window stride, at most seq-len (default: seq-len, no overlap; less: a sliding window)")
    p.add_argument("--batches", type=positive_int, default=20, help="validation batches (masked LM, span corruption)")
    p.add_argument("--group-by", metavar="FIELD",
                   help="a fine-tuned classifier's metrics per value of FIELD of its test file (or one --data file)")
    add_no_progress(p)

    p = sub.add_parser("info", help="parameters, FLOPs per token and training memory of a run or recipe")
    p.add_argument("target", help="run directory or recipe YAML")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="sequences per micro-batch, all processes together (default: the recipe's)")
    add_memory_options(p)
    return {"eval": _eval, "info": _info}


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


def _eval(args: argparse.Namespace) -> int:
    from fromzero.runs import VISION_INFO, is_finetune_run, load_run
    from fromzero.runs.recommender import RECOMMEND_INFO

    if args.group_by:  # per-group metrics (fairness): cli/reporting.py, finetune/group_eval.py
        return eval_groups(args)
    if (Path(args.run_dir) / VISION_INFO).is_file():  # an image run: test metrics + pictures, into eval.json
        from fromzero.vision.evaluate import evaluate_image_run

        metrics = evaluate_image_run(args.run_dir)
        print(f"{args.run_dir} test: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                  if isinstance(v, float | int)))
        return 0
    if (Path(args.run_dir) / RECOMMEND_INFO).is_file():  # full ranking on the saved split, into eval.json
        from fromzero.recommend.evaluate import evaluate_recommender_run

        metrics = evaluate_recommender_run(args.run_dir, progress=not args.no_progress)
        print(f"{args.run_dir} test: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                  if isinstance(v, float)))
        return 0
    if is_finetune_run(args.run_dir):  # task metrics on the run's test copy, rewritten into eval.json
        from fromzero.finetune.evaluate import evaluate_finetuned_run

        # a fixed batch size (finetune's): padding changes float rounding, and the numbers must reproduce
        print_finetune_eval(Path(args.run_dir), evaluate_finetuned_run(args.run_dir))
        return 0
    run = load_run(args.run_dir)
    objective = (run.config.get("objective") or {}).get("name", "causal_lm")
    if objective != "causal_lm":
        return _eval_objective(run, objective, args)
    return _eval_perplexity(run, args)


def _eval_objective(run: Run, objective: str, args: argparse.Namespace) -> int:
    """Masked LM / span corruption metrics on a validation split, beside the majority baselines."""
    from fromzero.eval.eval_file import update_eval_file
    from fromzero.eval.pretraining import evaluate_pretraining

    if args.data:
        raise ConfigError(f"--data: scores language models; {run.path} is a {objective} run, evaluated on its own "
                          "validation split (or --shards)")
    result = evaluate_pretraining(run, n_batches=args.batches, batch_size=args.batch_size, shards=args.shards)
    where = f"the validation split of {args.shards}" if args.shards else "the validation split"
    print(f"{objective} on {where} ({args.batches} batches of {args.batch_size}):")
    for key, value in result.items():
        print(f"  {key:>28}: {value:.4f}")
    source = f"validation split ({objective})" + (f" of {args.shards}" if args.shards else "")
    update_eval_file(run.path, {source: result})
    return 0


def _eval_perplexity(run: Run, args: argparse.Namespace) -> int:
    """Loss, perplexity and bits per token of a language model on files or a validation split."""
    from fromzero.data.shards import load_shards
    from fromzero.eval.eval_file import update_eval_file
    from fromzero.eval.perplexity import encode_files, perplexity
    from fromzero.eval.pretraining import shards_for
    from fromzero.models import context_length

    context = context_length(run.model_config)
    if args.seq_len is not None and args.seq_len > context:
        raise ConfigError(f"--seq-len {args.seq_len} exceeds the model's context of {context} tokens; score longer "
                          f"text in windows: --seq-len {context} --stride {max(1, context // 2)} slides a window")
    window = args.seq_len or context
    if args.stride is not None and args.stride > window:
        raise ConfigError(f"--stride {args.stride} is longer than the window ({window} tokens) and would skip text; "
                          f"use at most {window}")
    if args.data:
        tokens, source = encode_files(run, args.data, args.text_field), " ".join(args.data)
    else:
        _, tokens, _ = load_shards(shards_for(run, args.shards))
        source = f"validation split of {args.shards}" if args.shards else "validation split"
    result = perplexity(run, tokens, seq_len=args.seq_len, batch_size=args.batch_size, stride=args.stride)
    print(f"{source}: loss {result['loss']:.4f} nats/token, perplexity {result['ppl']:.3f}, "
          f"{result['bits_per_token']:.4f} bits/token over {result['tokens']:,} tokens")
    update_eval_file(run.path, {source: result})
    return 0


def _info(args: argparse.Namespace) -> int:
    from fromzero.finetune.info import describe_finetune_run, is_finetune_run_dir
    from fromzero.runs import VISION_INFO
    from fromzero.runs.recommender import RECOMMEND_INFO

    target = Path(args.target)
    compression = _compression_lines(target)
    if is_finetune_run_dir(target):
        print("\n".join(describe_finetune_run(target) + compression))
        return 0
    if (target / VISION_INFO).is_file():
        from fromzero.vision.info import describe_image_run

        print("\n".join(describe_image_run(target) + compression))
        return 0
    if (target / RECOMMEND_INFO).is_file():
        from fromzero.recommend.evaluate import describe_recommender_run

        print("\n".join(describe_recommender_run(target)))
        return 0
    if target.is_file() and _is_vision_recipe(target):
        print("\n".join(_describe_vision_recipe(target, args.overrides)))
        return 0
    model = [] if target.is_file() and _is_finetune_recipe(target) else _model_lines(target, args)
    print("\n".join(model + _memory_report(target, args) + compression))
    return 0


def _model_lines(target: Path, args: argparse.Namespace) -> list[str]:
    """The config, parameter counts and FLOPs of a text run's or pretraining recipe's model."""
    from fromzero.config import to_dict
    from fromzero.train.cost_estimate import cost_estimate, human

    lines = []
    if target.is_dir():
        from fromzero.runs import load_run

        run = load_run(target, with_weights=False)
        model_cfg, train = run.model_config, run.config.get("train", {})
    else:
        from fromzero.pretrain.recipe import load_recipe

        recipe = load_recipe(target, args.overrides)
        model_cfg = recipe.model_config(file=str(target))
        train = {"batch_size": recipe.train.batch_size, "seq_len": recipe.train.seq_len}
        lines.append(f"note: vocab_size {model_cfg.vocab_size} is the recipe's; pretrain sets it from the tokenizer")
    batch = args.batch_size or train.get("batch_size") or 1
    est = cost_estimate(model_cfg, seq_len=train.get("seq_len"), batch_size=batch)
    p, f = est["parameters"], est["flops_per_token"]
    return lines + [f"model: {type(model_cfg).__name__} {json.dumps(to_dict(model_cfg))}",
                    f"parameters: {p['total']:,} total, {p['non_embedding']:,} non-embedding ({human(p['total'])})",
                    f"FLOPs per token: {human(f['forward'])} forward, {human(f['training'])} training (3x); "
                    f"{human(f['training_step'])} per step of {batch} x {est['seq_len']} tokens"]


def _is_finetune_recipe(path: Path) -> bool:
    from fromzero.config import load_yaml
    from fromzero.runs import is_finetune_recipe_data

    return is_finetune_recipe_data(load_yaml(path))


def _is_vision_recipe(path: Path) -> bool:
    from fromzero.config import load_yaml
    from fromzero.runs import is_vision_recipe_data

    return is_vision_recipe_data(load_yaml(path))


def _describe_vision_recipe(path: Path, overrides: list[str]) -> list[str]:
    """Parameters and FLOPs per image of a vision recipe's model (channels and classes as the recipe or the
    preset give them; `fromzero train` sets them from the data)."""
    from fromzero.train.cost_estimate import human
    from fromzero.train.image_cost import image_cost
    from fromzero.vision.recipe import load_vision_recipe

    recipe = load_vision_recipe(path, overrides)
    cfg = recipe.model_config({}, str(path))
    data = recipe.data
    side = data.image_size or {"fashion-mnist": 28, "digits": 8, "scenes": data.scenes.canvas,
                               "photos": data.photos.patch}.get(data.source)
    cost = image_cost(cfg, side)
    flops, params = cost["flops_per_image"], cost["parameters"]["total"]
    images = recipe.train.batch_size * recipe.train.grad_accum * recipe.train.max_steps
    side = cost["image_size"]
    return [f"vision recipe: {recipe.task} with {recipe.model_name()} ({type(cfg).__name__})",
            f"parameters: {params:,} ({human(params)})",
            f"FLOPs per {side}x{side} image: {human(flops['forward'])} forward, {human(flops['training'])} training "
            f"(3x); {images:,} training images in all: {human(flops['training'] * images)} FLOPs",
            "note: in_channels / num_classes are the recipe's or the preset's; `fromzero train` takes them from "
            "the data"]


def _compression_lines(target: Path) -> list[str]:
    """What compression.json says about a compressed run: its source and each step, one line each."""
    from fromzero.runs import read_compression_info

    info = read_compression_info(target) if target.is_dir() else None
    if info is None:
        return []
    lines = [f"compressed from: {info.get('source')} (the parameter counts above are the uncompressed config's)"]
    for i, step in enumerate(info["steps"], 1):
        fields = ", ".join(f"{k}={v}" for k, v in step.items()
                           if k != "op" and isinstance(v, (str, int, float, bool)) and v is not None)
        lines.append(f"  step {i}: {step['op']} ({fields})")
    return lines


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

    if target.is_file() and _is_finetune_recipe(target):
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


def _memory_report(target: Path, args: argparse.Namespace) -> list[str]:
    """The planner's lines: the peak term by term, with checkpointing, and the largest batch for --memory."""
    from dataclasses import replace

    from fromzero.train.cost_estimate import describe_model, human
    from fromzero.train.memory_plan import BATCH_LIMIT, largest_batch, plan_memory

    t = training_target(target, args.overrides)
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
