"""``fromzero import-hf`` and ``fromzero export-hf``: Hugging Face checkpoints in and out."""

from __future__ import annotations

import argparse

from fromzero.cli.options import Handler


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("import-hf", help="import a Hugging Face checkpoint (local folder or hub id) as a run directory")
    p.add_argument("source", help="folder with config.json + weights + tokenizer files, or a hub id (needs network)")
    p.add_argument("run_dir", help="run directory to write (must be empty or new)")
    p.add_argument("--force", action="store_true", help="replace a non-empty run_dir")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit (hub ids only)")

    p = sub.add_parser("export-hf", help="export a run directory as a Hugging Face checkpoint folder")
    p.add_argument("run_dir")
    p.add_argument("out_dir", help="folder to write (must be empty or new)")
    p.add_argument("--force", action="store_true", help="replace a non-empty out_dir")
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                   help="weight dtype (default: the model's)")

    return {"import-hf": _import_hf, "export-hf": _export_hf}


def _import_hf(args: argparse.Namespace) -> int:
    from fromzero.interop import import_to_run

    report = import_to_run(args.source, args.run_dir, force=args.force, revision=args.revision)
    print(f"imported {report.architecture} ({report.family}, {report.parameters:,} parameters) from "
          f"{report.source} into {report.run_dir} (tokenizer from {report.tokenizer_from})")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def _export_hf(args: argparse.Namespace) -> int:
    from fromzero.interop import export_run

    export = export_run(args.run_dir, args.out_dir, force=args.force, dtype=args.dtype)
    print(f"wrote {args.out_dir}: {export.architecture}, {len(export.state)} tensors ({export.config['torch_dtype']}); "
          f"load it with transformers.{export.auto_class}.from_pretrained({str(args.out_dir)!r})")
    if export.dropped:
        print(f"note: not in {export.architecture}, so not exported: {', '.join(export.dropped)}")
    return 0
