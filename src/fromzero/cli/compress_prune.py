"""``fromzero compress prune``: unstructured (magnitude, Wanda) or structured (heads, neurons) pruning of a run."""

from __future__ import annotations

import argparse

from fromzero.cli.options import Handler, add_no_progress, fraction_below_one, non_negative_int


def add_command(sub: argparse._SubParsersAction) -> Handler:
    """Add ``prune`` to the ``compress`` group; returns its handler."""
    p = sub.add_parser("prune", help="zero the least important weights, or remove heads / neurons",
                       description="Prune the linear layers inside the Transformer blocks (not embeddings, norms, "
                       "the LM head or task heads) of a run directory into a new run directory, and print a "
                       "per-layer sparsity report (also saved as OUT/sparsity.json). Recipe overrides "
                       "(--section.key=value) after --recover apply to the recovery recipe.")
    p.add_argument("run_dir", help="run directory to prune (pretrained, imported or fine-tuned)")
    p.add_argument("--sparsity", type=fraction_below_one, required=True,
                   help="fraction of prunable weights (or, with --structured, of heads / neurons) to remove, [0, 1)")
    p.add_argument("--method", dest="prune_method", choices=["magnitude", "wanda"], default="magnitude",
                   help="weight score: |W| (magnitude) or |W| * ||X||_2 over calibration tokens (wanda)")
    p.add_argument("--scope", choices=["layer", "global"], default="layer",
                   help="prune each layer to the sparsity (wanda: each output row), or one ranking over all")
    p.add_argument("--structured", choices=["heads", "neurons"], default=None,
                   help="remove whole attention heads or FFN hidden units (tensors shrink) instead")
    p.add_argument("--calibration", type=non_negative_int, default=8,
                   help="validation batches for wanda / activation-based head and neuron importance "
                   "(0: structured importance from weights)")
    p.add_argument("--recover", default=None, metavar="RECIPE",
                   help="fine-tune (fine-tuned run: e.g. RUN/config.yaml) or pretrain (pretrained run) the pruned "
                   "model with this recipe, pruned weights kept at zero")
    p.add_argument("--out", required=True, help="output run directory (must be new or empty)")
    add_no_progress(p)
    return _prune


def _prune(args: argparse.Namespace) -> int:
    from fromzero.compress.prune_run import prune_run
    from fromzero.compress.sparsity_report import format_report

    result = prune_run(args.run_dir, args.out, sparsity=args.sparsity, method=args.prune_method, scope=args.scope,
                       structured=args.structured, calibration=args.calibration, recover_recipe=args.recover,
                       overrides=getattr(args, "overrides", None) or None, progress=not args.no_progress)
    print(format_report(result.report))
    what = (f"{result.step['target']} removed ({args.sparsity:.0%} requested)" if args.structured else
            f"{args.prune_method} pruning at {args.sparsity:.0%} ({args.scope} scope)")
    after = result.report["parameters"]
    print(f"{what}: parameters {result.parameters_before:,} -> {after:,}, prunable-weight sparsity "
          f"{result.report['sparsity']:.1%}"
          + (f", recovered for {result.recovery_steps} steps" if result.recovery_steps is not None else ""))
    print(f"wrote {result.out}")
    return 0
