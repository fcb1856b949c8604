"""``fromzero eval`` (held-out loss, objective metrics, a fine-tune's test metrics) and ``fromzero info``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from fromzero.cli.memory_report import add_memory_options, is_finetune_recipe_file, memory_report
from fromzero.cli.options import Handler, add_no_progress, positive_int
from fromzero.cli.recommending import eval_recommender, info_recommender, is_recommender_dir
from fromzero.cli.reporting import eval_groups
from fromzero.cli.reports import print_finetune_eval
from fromzero.cli.speech import eval_speech, info_speech, is_speech_dir
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
    p.add_argument("--split", choices=("test", "validation"), default=None,
                   help="speech runs: score this split only (default: both)")
    p.add_argument("--beam", type=positive_int, default=None,
                   help="speech runs: prefix beam width beside greedy (default: the run's decode.beam_width)")
    add_no_progress(p)

    p = sub.add_parser("info", help="parameters, FLOPs per token and training memory of a run or recipe")
    p.add_argument("target", help="run directory or recipe YAML")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="sequences per micro-batch, all processes together (default: the recipe's)")
    add_memory_options(p)
    return {"eval": _eval, "info": _info}


def _eval(args: argparse.Namespace) -> int:
    from fromzero.runs import VISION_INFO, is_finetune_run, load_run

    if args.group_by:  # per-group metrics (fairness): cli/reporting.py, finetune/group_eval.py
        return eval_groups(args)
    if is_speech_dir(args.run_dir):  # WER / CER on the run's own test / validation manifests, into eval.json
        return eval_speech(args)
    if args.split or args.beam:
        raise ConfigError(f"--split / --beam: score speech runs; {args.run_dir} is not one (no speech.json)")
    if (Path(args.run_dir) / VISION_INFO).is_file():  # an image run: test metrics + pictures, into eval.json
        from fromzero.vision.evaluate import evaluate_image_run

        metrics = evaluate_image_run(args.run_dir)
        print(f"{args.run_dir} test: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                  if isinstance(v, float | int)))
        return 0
    if is_recommender_dir(args.run_dir):  # full ranking on the saved split, into eval.json
        return eval_recommender(args)
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

    target = Path(args.target)
    compression = _compression_lines(target)
    if is_finetune_run_dir(target):
        print("\n".join(describe_finetune_run(target) + compression))
        return 0
    if (target / VISION_INFO).is_file():
        from fromzero.vision.info import describe_image_run

        print("\n".join(describe_image_run(target) + compression))
        return 0
    if is_recommender_dir(target):
        return info_recommender(target)
    if is_speech_dir(target):
        return info_speech(target)
    if target.is_file() and _is_vision_recipe(target):
        print("\n".join(_describe_vision_recipe(target, args.overrides)))
        return 0
    model = [] if target.is_file() and is_finetune_recipe_file(target) else _model_lines(target, args)
    print("\n".join(model + memory_report(target, args) + compression))
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
