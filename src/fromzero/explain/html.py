"""The HTML pages of explanations: coloured tokens per method, and the attention heatmaps with their tokens.

Self-contained text (inline CSS, images by relative path next to the page), escaped everywhere. A token's
colour is its attribution divided by the row's largest absolute attribution: red pushes toward the target
class, blue away from it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

STYLE = ("body{font-family:sans-serif;margin:2em;max-width:70em} .tok{padding:1px 2px;margin:1px;"
         "border-radius:3px;display:inline-block;font-family:monospace} td,th{padding:2px 8px;text-align:left}")


def _colour(value: float, scale: float) -> str:
    share = 0.0 if scale == 0 else max(-1.0, min(1.0, value / scale))
    rgb = "220,40,40" if share >= 0 else "40,90,220"
    return f"rgba({rgb},{abs(share):.3f})"


def coloured_tokens(tokens: Sequence[str], scores: Sequence[float]) -> str:
    """One line of ``<span>``s, each token shaded by its score (title: the value)."""
    scale = max((abs(s) for s in scores), default=0.0)
    return "".join(f'<span class="tok" style="background:{_colour(s, scale)}" title="{s:.4g}">'
                   f"{html.escape(t)}</span>" for t, s in zip(tokens, scores, strict=True))


def page(title: str, body: str) -> str:
    """A complete HTML document."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def attributions_page(run: str, records: Sequence[dict[str, Any]]) -> str:
    """Each input: its prediction and one coloured line per attribution method."""
    parts = []
    for i, r in enumerate(records):
        probs = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in r["scores"].items())
        parts.append(f"<h2>input {i}</h2><p>{html.escape(r['text'])}</p><p>predicted <b>"
                     f"{html.escape(r['predicted'])}</b>; target <b>{html.escape(r['target'])}</b> ({probs})</p>"
                     "<table>")
        for method, values in r["attributions"].items():
            parts.append(f"<tr><th>{html.escape(method)}</th><td>{coloured_tokens(r['tokens'], values)}</td></tr>")
        parts.append("</table>")
    return page(f"token attributions: {run}", "\n".join(parts))


def attention_page(run: str, records: Sequence[dict[str, Any]]) -> str:
    """Each input: its tokens and the heatmap of every layer (images referenced relative to the page)."""
    parts = []
    for i, r in enumerate(records):
        tokens = " ".join(f'<span class="tok">{html.escape(t)}</span>' for t in r["tokens"])
        parts.append(f"<h2>input {i}</h2><p>{tokens}</p>")
        for layer, png in r["attention_png"].items():
            parts.append(f'<h3>{html.escape(layer)}</h3><img src="{html.escape(png)}" alt="{html.escape(layer)}">')
    return page(f"attention maps: {run}", "\n".join(parts))
