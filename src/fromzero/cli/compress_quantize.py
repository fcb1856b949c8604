"""``fromzero compress quantize``: dynamic int8, weight-only int8 / int4 (round-to-nearest or GPTQ)."""

from __future__ import annotations

import argparse

from fromzero.cli.options import Handler, add_no_progress, non_negative_int

KEEP_FLOAT_DEFAULT = "*lm_head,*mlm_head.decoder,*nsp_head,head.*"  # fromzero.compress.DEFAULT_KEEP_FLOAT


def _patterns(text: str) -> list[str]:
    """``--keep-float``: comma-separated globs; ``none`` keeps nothing float beyond tied weights."""
    if text.strip().lower() == "none":
        return []
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    if not patterns:
        raise argparse.ArgumentTypeError("expected comma-separated module-name globs (or 'none')")
    return patterns


def add_command(sub: argparse._SubParsersAction) -> Handler:
    """Add ``quantize`` to the ``compress`` group; returns its handler."""
    p = sub.add_parser("quantize", help="store linear layers as int8 / int4 (dynamic int8 or weight-only)",
                       description="Quantize the linear layers of a run directory into a new run directory that "
                       "eval, generate and serve open like any other. Embeddings, norms, the output head and "
                       "task heads stay float by default (--keep-float).")
    p.add_argument("run_dir", help="run directory to quantize (pretrained, imported, fine-tuned or pruned)")
    p.add_argument("--mode", required=True, choices=["dynamic-int8", "weight-int8", "weight-int4"],
                   help="dynamic-int8: int8 weights and per-token int8 activations, int8 matmul on CPU; "
                   "weight-int8 / weight-int4: integer weights, float compute")
    p.add_argument("--group-size", type=non_negative_int, default=None,
                   help="input columns sharing one scale (default: 128 for weight-int4, one scale per output "
                   "channel otherwise; 0: per output channel); must divide every quantized layer's inputs")
    p.add_argument("--keep-float", type=_patterns, default=None, metavar="PATTERNS",
                   help=f"comma-separated globs of linear layers left float, replacing the default "
                   f"{KEEP_FLOAT_DEFAULT!r}; 'none' quantizes those too (tied weights always stay float)")
    p.add_argument("--calibration", type=non_negative_int, default=0,
                   help="validation batches for GPTQ and for the reported max logits difference (default 0)")
    p.add_argument("--gptq", action="store_true",
                   help="GPTQ rounding (error feedback through the inputs' Hessian) instead of round-to-nearest; "
                   "needs --calibration N")
    p.add_argument("--out", required=True, help="output run directory (must be new or empty)")
    add_no_progress(p)
    return _quantize


def _quantize(args: argparse.Namespace) -> int:
    from fromzero.compress.quantize import quantize_run

    report = quantize_run(args.run_dir, args.out, mode=args.mode, group_size=args.group_size,
                          keep_float=args.keep_float, calibration=args.calibration, gptq=args.gptq,
                          progress=not args.no_progress)
    step = report.step
    scales = f"groups of {step['group_size']}" if step["group_size"] else "per output channel"
    print(f"{step['mode']} ({step['rounding']}, scales {scales}): {len(report.modules)} linear layers quantized, "
          f"{len(report.kept_float)} kept float ({', '.join(report.kept_float) or 'none'})")
    ratio = report.bytes_before / report.bytes_after if report.bytes_after else float("nan")
    print(f"weights on disk: {report.bytes_before / 1e6:.2f} MB -> {report.bytes_after / 1e6:.2f} MB "
          f"({ratio:.2f}x smaller)")
    if report.max_logits_diff is not None:
        print(f"max |logits difference| vs float over {report.calibration_batches} calibration batches: "
              f"{report.max_logits_diff:.4g}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"wrote {report.out}")
    return 0
