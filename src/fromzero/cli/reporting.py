"""``fromzero report`` (a run's report.html, regenerated and opened) and ``eval --group-by``'s handler.

Not to be confused with ``cli/reports.py``, which prints a fine-tune's test report on the terminal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fromzero.cli.options import Handler
from fromzero.errors import ConfigError


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("report", help="regenerate a run's self-contained report.html and open it in a browser")
    p.add_argument("run_dir")
    p.add_argument("--no-open", action="store_true", help="only write the file and print its path")
    return {"report": _report}


def _report(args: argparse.Namespace) -> int:
    from fromzero.runs.report import write_report

    path = write_report(args.run_dir)
    print(path)
    if not args.no_open and sys.stdout.isatty():  # a pipe, a CI log or a remote shell: nothing to open
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def eval_groups(args: argparse.Namespace) -> int:
    """``fromzero eval RUN --group-by FIELD [--data FILE]``: per-group metrics printed and kept in eval.json."""
    from fromzero.eval.group_metrics import format_group_table
    from fromzero.finetune.group_eval import check_groupable, evaluate_groups

    check_groupable(args.run_dir, args.group_by)
    if args.data and len(args.data) > 1:
        raise ConfigError(f"--data: --group-by scores one file, got {len(args.data)}; pass one JSONL / CSV / TSV file")
    if args.data and not Path(args.data[0]).is_file():
        raise ConfigError(f"--data: {args.data[0]} is not a file; pass one JSONL / CSV / TSV task file")
    entry = evaluate_groups(args.run_dir, args.group_by, args.data[0] if args.data else None,
                            progress=not args.no_progress)
    print("\n".join(format_group_table(entry)))
    print(f"  written to {Path(args.run_dir) / 'eval.json'} (key 'groups') and report.html")
    return 0
