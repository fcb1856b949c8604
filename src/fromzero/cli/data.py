"""``fromzero prepare`` (corpus -> tokenizer + token shards) and ``fromzero prepare-task`` (named datasets)."""

from __future__ import annotations

import argparse

from fromzero.cli.options import Handler, add_no_progress, fraction_below_one, from_options, non_negative_int
from fromzero.errors import FromZeroError


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("prepare", help="train a tokenizer and write token shards")
    p.add_argument("inputs", nargs="+", help=".txt/.jsonl files, folders, or bundled:NAME")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe", "wordpiece", "unigram"])
    p.add_argument("--vocab-size", type=int, default=8000, help="target vocabulary (not for char)")
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--val-fraction", type=fraction_below_one, default=0.1, help="share held out, in [0, 1)")
    p.add_argument("--seed", type=non_negative_int, default=1337)
    p.add_argument("--text-field", default="text", help="JSONL field holding the text")
    add_no_progress(p)

    p = sub.add_parser("prepare-task", help="write an offline task dataset as train/validation/test JSONL")
    p.add_argument("dataset", nargs="?", help="dataset name, e.g. trec (`fromzero prepare-task --list` lists them)")
    p.add_argument("--list", action="store_true", help="list the datasets with a line about each, and exit")
    p.add_argument("out_dir", nargs="?", help="folder for the prepared files")
    p.add_argument("--seed", type=non_negative_int, default=0, help="fixes the train/validation/test split")
    add_no_progress(p)

    return {"prepare": _prepare, "prepare-task": _prepare_task}


def _prepare(args: argparse.Namespace) -> int:
    from fromzero.data.shards import prepare_corpus
    from fromzero.data.tokenizers import TokenizerConfig

    values = {"kind": args.tokenizer, "vocab_size": args.vocab_size, "lowercase": args.lowercase}
    cfg = from_options(TokenizerConfig, values, {"kind": "--tokenizer"})
    info = prepare_corpus(args.inputs, args.out, cfg, val_fraction=args.val_fraction, seed=args.seed,
                          text_field=args.text_field)
    meta = info.meta
    print(f"wrote {args.out}: {meta['train_tokens']:,} train + {meta['val_tokens']:,} val tokens, "
          f"vocab {meta['vocab_size']:,} ({meta['tokenizer_kind']}), dtype {meta['dtype']}")
    return 0


def _prepare_task(args: argparse.Namespace) -> int:
    from fromzero.data.datasets import count_examples, dataset_lines, prepare_task_data

    if args.list or args.dataset == "list":
        print("\n".join(dataset_lines()))
        return 0
    if not args.dataset:
        raise FromZeroError("prepare-task: name a dataset, e.g. `fromzero prepare-task trec runs/data/trec` "
                            "(`fromzero prepare-task --list` lists them)")
    if not args.out_dir:
        raise FromZeroError("prepare-task: give an output folder, e.g. `fromzero prepare-task trec runs/data/trec`")
    paths = prepare_task_data(args.dataset, args.out_dir, seed=args.seed)
    print(f"wrote {args.out_dir}: " + ", ".join(f"{p.name} ({count_examples(p):,})" for p in paths.values()))
    return 0
