"""What every subcommand module shares: the handler type."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]  # parsed arguments (``overrides`` included) -> exit code


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: every long-running command takes it (main() silences every reporter)."""
    parser.add_argument("--no-progress", action="store_true",
                        help="print no progress (off a terminal, progress is one plain line every ~30 s)")
