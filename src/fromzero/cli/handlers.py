"""What every subcommand module shares: the handler type."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]  # parsed arguments (``overrides`` included) -> exit code
