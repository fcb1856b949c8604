"""A run directory's ``eval.json``: every evaluation's results, keyed by what was evaluated.

``fromzero eval`` adds (or replaces) one entry per source: ``validation split``, a file list, another
run's shards, or ``test`` for a fine-tuned run. Other entries are kept; the file is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.runs import read_run_json

EVAL_FILE = "eval.json"


def update_eval_file(run_path: Path, entries: dict[str, Any]) -> dict[str, Any]:
    """Set ``entries`` in ``run_path/eval.json``, keeping the others; returns the whole file's content."""
    path = run_path / EVAL_FILE
    saved = read_run_json(path) if path.exists() else {}
    saved.update(entries)
    write_text(path, json.dumps(saved, indent=1))
    return saved
