"""The pictures and tables of a run's report.html, as self-contained HTML fragments.

Curves are drawn with matplotlib's object-oriented API (no pyplot state, no display) and embedded as
base64 PNG ``data:`` URIs, like the run's own PNGs; the confusion matrix and coloured tokens are plain HTML
tables and spans. Every text is escaped; nothing refers to a file or a network address.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_PNG_BYTES = 4 * 2**20  # a larger picture is named, not embedded (the page stays quick to open)


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def embedded_png(path: Path, caption: str) -> str:
    """A ``<figure>`` holding the PNG at ``path`` inline (too large or not a PNG: a note naming the file)."""
    data = path.read_bytes() if path.is_file() else b""
    if not data.startswith(b"\x89PNG") or len(data) > MAX_PNG_BYTES:
        return f"<p class=\"note\">{html.escape(caption)}: see {html.escape(str(path))} (not embedded)</p>"
    return (f'<figure><img src="{png_data_uri(data)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def read_metric_records(path: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl (a torn or foreign line is skipped, as the Trainer's reader does)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int | float):
            records.append(row)
    return records


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)
              and not isinstance(r.get(key), bool) and math.isfinite(r[key])]
    return [s for s, _ in points], [v for _, v in points]


def curve_panels(records: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(title, keys) of each panel worth drawing: losses, validation rates in [0, 1] (accuracy, F1, ...), other
    validation values (perplexity, BLEU, ...), learning rate."""
    keys = {k for r in records for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    losses = [k for k in ("loss", "val_loss") if k in keys]
    val = sorted(k for k in keys if k.startswith("val_") and k != "val_loss")
    rates = [k for k in val if all(0 <= v <= 1 for v in _series(records, k)[1])]
    panels = [("loss", losses), ("validation rates", rates), ("validation values", [k for k in val if k not in rates]),
              ("learning rate", ["lr"] if "lr" in keys else [])]
    return [(title, ks) for title, ks in panels if ks]


def curves_png(records: list[dict[str, Any]], title: str) -> bytes | None:
    """One PNG with a panel per group of curves (None without any numbers to draw)."""
    panels = curve_panels(records)
    if not panels:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(4.2 * len(panels), 14), 3.4), dpi=100)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, keys) in zip(axes, panels, strict=True):
        for key in keys:
            steps, values = _series(records, key)
            many = len(steps) > 30
            ax.plot(steps, values, label=key, linewidth=1.0 if many else 1.5, marker=None if many else "o",
                    markersize=3)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _cell_colour(share: float) -> str:
    return f"rgba(40,110,200,{max(0.0, min(1.0, share)) * 0.85:.3f})"


def confusion_table(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """Rows: true class, columns: predicted class; each cell shaded by its share of the row."""
    head = "".join(f"<th>{html.escape(str(lab))}</th>" for lab in labels)
    rows = []
    for lab, row in zip(labels, matrix, strict=True):
        total = sum(row) or 1
        cells = "".join(f'<td class="num" style="background:{_cell_colour(n / total)}">{int(n)}</td>' for n in row)
        rows.append(f"<tr><th>{html.escape(str(lab))}</th>{cells}</tr>")
    return (f'<table class="confusion"><tr><th>true \\ predicted</th>{head}</tr>{"".join(rows)}</table>')


def coloured_tokens(tokens: Sequence[str], scores: Sequence[float]) -> str:
    """Tokens shaded by attribution (red toward the target class, blue away), scaled by the row's largest."""
    scale = max((abs(s) for s in scores), default=0.0)
    spans = []
    for token, score in zip(tokens, scores, strict=True):
        share = 0.0 if scale == 0 else max(-1.0, min(1.0, score / scale))
        rgb = "220,40,40" if share >= 0 else "40,90,220"
        spans.append(f'<span class="tok" style="background:rgba({rgb},{abs(share):.3f})" title="{score:.4g}">'
                     f"{html.escape(str(token))}</span>")
    return "".join(spans)


def scalar_table(values: dict[str, Any]) -> str:
    """A two-column table of the numbers, strings and booleans in ``values`` (nested values left out)."""
    rows = []
    for key, value in values.items():
        if isinstance(value, float):
            shown = f"{value:.4f}" if math.isfinite(value) else str(value)
        elif isinstance(value, bool | int | str) or value is None:
            shown = "n/a" if value is None else f"{value:,}" if isinstance(value, int) and not isinstance(
                value, bool) else str(value)
        else:
            continue
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(shown)}</td></tr>")
    return f"<table>{''.join(rows)}</table>" if rows else ""
