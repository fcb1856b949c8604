"""``fromzero import-hf`` and ``fromzero export-hf``: Hugging Face checkpoints in and out; ``fromzero export-onnx``:
an ONNX graph checked with ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

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

    p = sub.add_parser("export-onnx", help="export a run directory's model to ONNX, checked with ONNX Runtime")
    p.add_argument("run_dir")
    p.add_argument("out_dir", help="folder to write model.onnx, onnx_export.json and the tokenizer to (new or empty)")
    p.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx (ONNX Runtime dynamic quantization, int8 weights)")
    p.add_argument("--opset", type=int, default=None, choices=range(17, 21), metavar="{17..20}",
                   help="ONNX opset (default 17)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison with PyTorch")

    return {"import-hf": _import_hf, "export-hf": _export_hf, "export-onnx": _export_onnx}


def _import_hf(args: argparse.Namespace) -> int:
    from fromzero.interop import import_to_run
    from fromzero.interop.hf_vit_run import import_vit_run, is_hf_vit_folder

    if is_hf_vit_folder(args.source):  # a ViTForImageClassification: an image run
        run_dir = import_vit_run(args.source, args.run_dir, force=args.force)
        print(f"imported ViTForImageClassification from {args.source} into {run_dir} (an image run: "
              f"fromzero predict {run_dir} IMAGE...)")
        return 0

    report = import_to_run(args.source, args.run_dir, force=args.force, revision=args.revision)
    print(f"imported {report.architecture} ({report.family}, {report.parameters:,} parameters) from "
          f"{report.source} into {report.run_dir} (tokenizer from {report.tokenizer_from})")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def _export_hf(args: argparse.Namespace) -> int:
    from fromzero.interop import export_run
    from fromzero.interop.hf_vit_run import export_vit_run
    from fromzero.runs import VISION_INFO

    if (Path(args.run_dir) / VISION_INFO).is_file():
        out = export_vit_run(args.run_dir, args.out_dir, force=args.force)
        print(f"wrote {out}: ViTForImageClassification; load it with "
              f"transformers.ViTForImageClassification.from_pretrained({str(out)!r})")
        return 0

    export = export_run(args.run_dir, args.out_dir, force=args.force, dtype=args.dtype)
    print(f"wrote {args.out_dir}: {export.architecture}, {len(export.state)} tensors ({export.config['torch_dtype']}); "
          f"load it with transformers.{export.auto_class}.from_pretrained({str(args.out_dir)!r})")
    if export.dropped:
        print(f"note: not in {export.architecture}, so not exported: {', '.join(export.dropped)}")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from fromzero.interop.onnx_export import export_onnx

    export = export_onnx(args.run_dir, args.out_dir, int8=args.int8, opset=args.opset, check=not args.no_check)
    size = export.model_path.stat().st_size / 2**20
    print(f"wrote {export.model_path} ({export.family} {export.kind}, opset {export.opset}, {size:.2f} MiB): "
          f"{', '.join(export.inputs)} -> {export.output}")
    for c in export.checks:
        print(f"  ONNX Runtime vs PyTorch at {_shapes(c)}: max |diff| {c['max_abs_diff']:.2e}")
        if "onnxruntime_vs_float64" in c:
            print(f"  note: over 1e-4 from float32 rounding: vs the model run in float64, PyTorch is off by "
                  f"{c['pytorch_float32_vs_float64']:.2e} and ONNX Runtime by {c['onnxruntime_vs_float64']:.2e}")
    if export.int8_path is not None:
        size = export.int8_path.stat().st_size / 2**20
        print(f"wrote {export.int8_path} ({size:.2f} MiB, int8 weights)")
        for c in export.int8_checks:
            agree = f", argmax agrees {c['argmax_agreement']:.1%}" if "argmax_agreement" in c else ""
            print(f"  int8 vs PyTorch float at {_shapes(c)}: max |diff| {c['max_abs_diff']:.3g}{agree}")
    return 0


def _shapes(check: dict) -> str:
    return ", ".join(f"{name} {tuple(shape)}" for name, shape in check["inputs"].items()
                     if name in ("input_ids", "decoder_input_ids"))
