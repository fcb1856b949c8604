"""``fromzero prepare`` (corpus -> tokenizer + token shards) and ``fromzero prepare-task`` (named datasets)."""

from __future__ import annotations

import argparse

from fromzero.cli.options import (
    Handler,
    add_no_progress,
    fraction_below_one,
    from_options,
    non_negative_float,
    non_negative_int,
    positive_count,
    positive_int,
    probability,
    unit_interval,
)
from fromzero.data.prepare_options import DEFAULT_SAMPLE_BYTES, DEFAULT_SHARD_TOKENS, PrepareOptions, default_workers
from fromzero.errors import FromZeroError


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("prepare", help="train a tokenizer and write token shards (`prepare merge` joins slices)",
                       description="Stream documents through cleaning and worker processes into token shards and "
                       "a manifest. Rerun the same command to resume an interrupted run. "
                       "`fromzero prepare merge SLICE_DIR... --out DIR` joins the folders of a --slices run.")
    p.add_argument("inputs", nargs="+", help=".txt/.jsonl (also .gz/.zst), .parquet, .arrow files, datasets "
                   "save_to_disk folders, folders of them, or bundled:NAME")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe", "wordpiece", "unigram"])
    p.add_argument("--vocab-size", type=int, default=8000, help="target vocabulary (not for char)")
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--tokenizer-file", help="encode with this tokenizer.json instead of training one")
    p.add_argument("--tokenizer-sample-bytes", type=positive_count, default=DEFAULT_SAMPLE_BYTES,
                   help="train the tokenizer on a seeded sample of this many bytes of text (default 100M)")
    p.add_argument("--tokenizer-only", action="store_true", help="write only OUT/tokenizer.json (for --slices)")
    p.add_argument("--val-fraction", type=fraction_below_one, default=0.1, help="share held out, in [0, 1)")
    p.add_argument("--seed", type=non_negative_int, default=1337)
    p.add_argument("--text-field", default="text", help="JSONL/Parquet/Arrow field holding the text")
    p.add_argument("--workers", type=positive_int, default=None, help="encoding processes (default: the cores)")
    p.add_argument("--shard-tokens", type=positive_count, default=DEFAULT_SHARD_TOKENS,
                   help="tokens per training shard (default 100M)")
    p.add_argument("--chunk-tokens", type=positive_int, default=4096,
                   help="long documents are split into train/val in chunks of this many tokens")
    p.add_argument("--no-dedup", action="store_true", help="keep exact duplicates (removed by default)")
    p.add_argument("--near-dedup", action="store_true", help="also drop near-duplicates (MinHash LSH)")
    p.add_argument("--near-threshold", type=probability, default=0.8, help="Jaccard similarity for --near-dedup")
    for name, kind, text in _QUALITY:
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=text)
    p.add_argument("--slices", type=positive_int, default=1, help="split the input files into K slices ...")
    p.add_argument("--slice", type=non_negative_int, default=0, help="... and prepare slice I (0-based)")
    add_no_progress(p)

    p = sub.add_parser("prepare-task", help="write an offline task dataset as train/validation/test JSONL")
    p.add_argument("dataset", nargs="?", help="dataset name, e.g. trec (`fromzero prepare-task --list` lists them)")
    p.add_argument("--list", action="store_true", help="list the datasets with a line about each, and exit")
    p.add_argument("out_dir", nargs="?", help="folder for the prepared files")
    p.add_argument("--seed", type=non_negative_int, default=0, help="fixes the train/validation/test split")
    add_no_progress(p)

    return {"prepare": _prepare, "prepare-task": _prepare_task}


_QUALITY = [("min_chars", non_negative_int, "drop documents shorter than this many characters"),
            ("min_words", non_negative_int, "drop documents with fewer words (not for unsegmented text)"),
            ("max_symbol_ratio", non_negative_float, "drop documents with more '#' or '...' per word"),
            ("min_alpha_ratio", unit_interval, "drop documents with a smaller share of alphabetic words"),
            ("max_duplicate_line_ratio", unit_interval, "drop documents with a larger share of repeated lines")]


def _options(args: argparse.Namespace) -> PrepareOptions:
    quality = {name: getattr(args, name) for name, _, _ in _QUALITY if getattr(args, name) is not None}
    return PrepareOptions(val_fraction=args.val_fraction, seed=args.seed, chunk_tokens=args.chunk_tokens,
                          shard_tokens=args.shard_tokens, text_field=args.text_field,
                          workers=args.workers or default_workers(), tokenizer_sample_bytes=args.tokenizer_sample_bytes,
                          dedup=not args.no_dedup, near_dedup=args.near_dedup, near_threshold=args.near_threshold,
                          quality=quality, slices=args.slices, slice=args.slice)


def _prepare(args: argparse.Namespace) -> int:
    from fromzero.data.prepare_stream import prepare_stream, write_sample_tokenizer
    from fromzero.data.tokenizers import Tokenizer, TokenizerConfig

    if args.inputs[0] == "merge":
        return _merge(args.inputs[1:], args.out)
    options = _options(args)
    values = {"kind": args.tokenizer, "vocab_size": args.vocab_size, "lowercase": args.lowercase}
    cfg = from_options(TokenizerConfig, values, {"kind": "--tokenizer"})
    if args.tokenizer_only:
        path = write_sample_tokenizer(args.inputs, args.out, options, cfg)
        print(f"wrote {path}")
        return 0
    tokenizer = Tokenizer.load(args.tokenizer_file) if args.tokenizer_file else None
    manifest = prepare_stream(args.inputs, args.out, options, tokenizer_cfg=cfg, tokenizer=tokenizer)
    print(_summary(args.out, manifest))
    return 0


def _summary(out: str, manifest: dict) -> str:
    report = manifest["report"]
    dropped = ", ".join(f"{n:,} {why.replace('_', ' ')}" for why, n in report["dropped"].items()) or "none"
    return (f"wrote {out}: {manifest['train_tokens']:,} train tokens in {report['shards']['train']} shard(s) + "
            f"{manifest['val_tokens']:,} val tokens in {report['shards']['val']}, vocab {manifest['vocab_size']:,} "
            f"({manifest['tokenizer_kind']}), dtype {manifest['dtype']}\n"
            f"documents: {report['documents_read']:,} read, {report['documents_kept']:,} kept; dropped: {dropped}"
            + (f"; {report['cross_slice_duplicates']:,} exact duplicate(s) across slices kept"
               if report.get("cross_slice_duplicates") else ""))


def _merge(folders: list[str], out: str) -> int:
    from fromzero.data.prepare_merge import merge_slices

    print(_summary(out, merge_slices(folders, out)))
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
