"""Metrics sinks: JSONL (the source of truth), TensorBoard, and a loss-curve PNG.

``metrics.jsonl`` holds one JSON object per line with a ``step`` key. On
resume it is cut back to the checkpoint's step (atomically) so a resumed
run's file equals an uninterrupted run's. In a multi-process run only rank 0
logs; the other ranks get a :class:`NullLogger`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fromzero.atomic import disk_full_as_error, write_text, write_with


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file (a torn last line from a crash is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLogger:
    """Writes each record to metrics.jsonl and scalar fields to TensorBoard."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is not None:
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        elif self.path.exists():
            self.path.unlink()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events after the checkpoint when a killed run resumes
            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"),
                                     purge_step=resume_step + 1 if resume_step is not None else None)

    def log(self, record: dict[str, Any]) -> None:
        with disk_full_as_error(self.path.parent, f"the step {record.get('step')} line of {self.path.name}",
                                left="a torn last line is skipped when read and cut on --resume"):
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()
        if self._tb is not None:
            step = record["step"]
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


class NullLogger:
    """What ranks other than 0 log to: nothing (one metrics.jsonl per run, written by rank 0)."""

    def log(self, record: dict[str, Any]) -> None:
        """Drop ``record``."""

    def close(self) -> None:
        """Nothing to close."""


def plot_losses(metrics_path: str | Path, out_png: str | Path, title: str = "") -> Path | None:
    """Plot train loss and validation loss against step; return the PNG path (None if no data)."""
    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", linewidth=1.0, alpha=0.8)
    if val:
        ax.plot([s for s, _ in val], [v for _, v in val], label="val loss", marker="o", markersize=3, linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title or "training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    try:
        write_with(out_png, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
    return out_png


def validation_at(metrics_path: str | Path, step: int | None) -> dict[str, float]:
    """The ``val_*`` metrics logged at ``step`` (the last such record; {} for None or none logged)."""
    if step is None:
        return {}
    rows = [r for r in read_metrics(metrics_path) if r.get("step") == step and any(k.startswith("val_") for k in r)]
    return {k: v for k, v in rows[-1].items() if k.startswith("val_")} if rows else {}
