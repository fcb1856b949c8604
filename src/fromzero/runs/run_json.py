"""Reading the JSON files a run directory holds, with one-line errors for damaged ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fromzero.errors import CheckpointError


def read_run_json(path: Path) -> dict[str, Any]:
    """A JSON object a run directory holds (finetune.json, eval.json, ...); a damaged one is a CheckpointError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: not UTF-8 text (byte {err.start}); the run directory is damaged: copy the "
                              "file again from where the run was trained") from None
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable ({err}); the run directory is damaged: copy the file again from "
                              "where the run was trained") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object; the run directory is damaged")
    return data
