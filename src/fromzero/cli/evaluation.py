"""``fromzero eval`` (held-out loss, objective metrics, a fine-tune's test metrics) and ``fromzero info``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fromzero.cli.handlers import Handler, add_no_progress
from fromzero.cli.reports import print_finetune_eval


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("eval", help="loss and perplexity on held-out text; test metrics of a fine-tuned run")
    p.add_argument("run_dir")
    p.add_argument("--data", nargs="+", help="files or folders (default: the run's validation split)")
    p.add_argument("--shards", help="another run's data/ folder (same tokenizer): score on its validation split, "
                                    "e.g. a base model on its continued-pretraining run's domain text")
    p.add_argument("--text-field", default="text")
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--stride", type=int, default=None, help="window stride (default: seq-len, no overlap)")
    p.add_argument("--batches", type=int, default=20, help="validation batches (masked LM, span corruption)")
    add_no_progress(p)

    p = sub.add_parser("info", help="parameters, FLOPs per token and training memory of a run or recipe")
    p.add_argument("target", help="run directory or recipe YAML")
    p.add_argument("--batch-size", type=int, default=None)
    return {"eval": _eval, "info": _info}


def _save_eval(run_path: Path, source: str, result: dict) -> None:
    from fromzero.atomic import write_text

    out = run_path / "eval.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous[source] = result
    write_text(out, json.dumps(previous, indent=1))


def _eval(args: argparse.Namespace) -> int:
    from fromzero.data.shards import load_shards
    from fromzero.eval.perplexity import encode_files, perplexity
    from fromzero.runs import is_finetune_run, load_run

    if is_finetune_run(args.run_dir):  # task metrics on the run's test copy, rewritten into eval.json
        from fromzero.finetune.evaluate import evaluate_finetuned_run

        # a fixed batch size (finetune's): padding changes float rounding, and the numbers must reproduce
        print_finetune_eval(Path(args.run_dir), evaluate_finetuned_run(args.run_dir))
        return 0
    run = load_run(args.run_dir)
    objective = (run.config.get("objective") or {}).get("name", "causal_lm")
    if objective != "causal_lm":
        from fromzero.eval.pretraining import evaluate_pretraining

        if args.data:
            print(f"error: --data is for language models; a {objective} run is evaluated on its own "
                  "validation split", file=sys.stderr)
            return 2
        result = evaluate_pretraining(run, n_batches=args.batches, batch_size=args.batch_size, shards=args.shards)
        where = f"the validation split of {args.shards}" if args.shards else "the validation split"
        print(f"{objective} on {where} ({args.batches} batches of {args.batch_size}):")
        for key, value in result.items():
            print(f"  {key:>28}: {value:.4f}")
        _save_eval(run.path, f"validation split ({objective})" + (f" of {args.shards}" if args.shards else ""),
                   result)
        return 0
    if args.data:
        tokens, source = encode_files(run, args.data, args.text_field), " ".join(args.data)
    else:
        from fromzero.eval.pretraining import shards_for

        _, tokens, _ = load_shards(shards_for(run, args.shards))
        source = f"validation split of {args.shards}" if args.shards else "validation split"
    result = perplexity(run, tokens, seq_len=args.seq_len, batch_size=args.batch_size, stride=args.stride)
    print(f"{source}: loss {result['loss']:.4f} nats/token, perplexity {result['ppl']:.3f}, "
          f"{result['bits_per_token']:.4f} bits/token over {result['tokens']:,} tokens")
    _save_eval(run.path, source, result)
    return 0


def _info(args: argparse.Namespace) -> int:
    from fromzero.finetune.info import describe_finetune_run, is_finetune_run_dir
    from fromzero.train.cost_estimate import cost_estimate, human

    target = Path(args.target)
    if is_finetune_run_dir(target):
        print("\n".join(describe_finetune_run(target)))
        return 0
    if target.is_dir():
        from fromzero.runs import load_run

        run = load_run(target, with_weights=False)
        model_cfg, train = run.model_config, run.config.get("train", {})
    else:
        from fromzero.pretrain.recipe import load_recipe

        recipe = load_recipe(target, args.overrides)
        model_cfg = recipe.model_config(file=str(target))
        train = {"batch_size": recipe.train.batch_size, "seq_len": recipe.train.seq_len}
        print(f"note: vocab_size {model_cfg.vocab_size} is the recipe's; pretrain sets it from the tokenizer")
    batch = args.batch_size or train.get("batch_size") or 1
    est = cost_estimate(model_cfg, seq_len=train.get("seq_len"), batch_size=batch)
    p, f, m = est["parameters"], est["flops_per_token"], est["memory_bytes"]
    print(f"model: {type(model_cfg).__name__} {json.dumps(_plain(model_cfg))}")
    print(f"parameters: {p['total']:,} total, {p['non_embedding']:,} non-embedding ({human(p['total'])})")
    print(f"FLOPs per token: {human(f['forward'])} forward, {human(f['training'])} training (3x)")
    print(f"training memory (AdamW fp32, batch {batch}, context {est['assumptions']['seq_len']}): "
          f"{human(m['weights_grads_adamw'], 'B')} weights+grads+optimizer, "
          f"{human(m['activations'], 'B')} activations, ~{human(m['total'], 'B')} total (estimate)")
    return 0


def _plain(cfg) -> dict:
    from fromzero.config import to_dict

    return to_dict(cfg)
