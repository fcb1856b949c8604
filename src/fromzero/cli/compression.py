"""``fromzero compress prune|quantize|distill``: one command group, one module per method.

Each method's module (``compress_prune``, ``compress_quantize``, ``compress_distill``) adds its subcommand to
this group and returns its handler; this module only dispatches on the method name.
"""

from __future__ import annotations

import argparse

from fromzero.cli import compress_distill, compress_prune, compress_quantize
from fromzero.cli.options import Handler
from fromzero.errors import ConfigError

COMPRESS_EXAMPLES = """examples:
  fromzero compress prune runs/quickstart --sparsity 0.5 --method wanda --out runs/qs-pruned50
  fromzero compress prune runs/finetune_trec_full --sparsity 0.3 --structured heads --out runs/trec-heads30
  fromzero compress quantize runs/finetune_trec_full --mode dynamic-int8 --out runs/trec-int8
  fromzero compress quantize runs/quickstart --mode weight-int4 --group-size 32 --gptq --out runs/qs-int4
  fromzero compress distill --teacher runs/quickstart recipes/distill_quickstart.yaml --out runs/qs-student
"""


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add ``compress`` and its methods; returns the group's handler."""
    group = sub.add_parser("compress", help="prune, quantize or distill a run directory into a new one",
                           description="Compress a run directory (GPT, BERT with or without a task head, T5) "
                           "into a new run directory that eval, generate and serve open like any other; "
                           "methods compose: prune, then distill, then quantize.",
                           epilog=COMPRESS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    methods = group.add_subparsers(dest="method", required=True, metavar="{prune,quantize,distill}")
    handlers = {name: module.add_command(methods) for name, module in
                (("prune", compress_prune), ("quantize", compress_quantize), ("distill", compress_distill))}

    def dispatch(args: argparse.Namespace) -> int:
        if args.method == "quantize" and args.overrides:  # no recipe to override
            raise ConfigError(f"unrecognized arguments: {' '.join(args.overrides)} (compress quantize takes no "
                              "recipe overrides)")
        return handlers[args.method](args)

    return {"compress": dispatch}
