"""``report.html``: one self-contained page per run directory, written at the end of every training run.

    config         the resolved recipe (config.yaml), verbatim
    summary        what the run says about itself: summary.json (pretraining), finetune.json, vision.json
    curves         train / validation loss, validation metrics and learning rate from metrics.jsonl
    metrics        the final (best) validation metrics, and every eval.json entry (test metrics first)
    groups         eval.json's per-group metrics (``fromzero eval RUN --group-by FIELD``), when present
    confusion      the test confusion matrix of a fine-tuned classifier (eval.json), as a table
    pictures       the run's plots/*.png but the loss curve (confusion matrices, test pictures, attack curves)
    samples        samples.json (pretraining: prompt + continuation), samples_test.tsv / .jsonl (fine-tunes)
    explanations   explain/attributions.json as coloured tokens, explain/*.png (``fromzero explain``)

Images are inline base64 PNGs, styles inline; the page loads nothing else (no script, no CDN), so it can be
mailed or archived alone. The pretraining runner passes its samples, which are kept in samples.json so
``fromzero report RUN`` regenerates the same page later.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.config import load_yaml
from fromzero.errors import CheckpointError
from fromzero.runs.report_figures import (
    coloured_tokens,
    confusion_table,
    curves_png,
    embedded_png,
    png_data_uri,
    read_metric_records,
    scalar_table,
)
from fromzero.runs.run import FINETUNE_INFO, VISION_INFO, read_run_json

REPORT_FILE = "report.html"
SAMPLES_FILE = "samples.json"
MAX_PICTURES = 12  # plots/ and explain/ PNGs embedded (a long attention sweep is left to its own page)
MAX_SAMPLES = 10
STYLE = ("body{font-family:sans-serif;margin:2em auto;max-width:72em;color:#222} h2{border-bottom:1px solid #ccc;"
         "padding-bottom:2px;margin-top:1.6em} table{border-collapse:collapse;margin:.5em 0} td,th{padding:2px 8px;"
         "text-align:left;border-bottom:1px solid #eee} td.num{text-align:right} pre{background:#f6f6f6;padding:.6em;"
         "overflow-x:auto;white-space:pre-wrap} img{max-width:100%} figure{display:inline-block;margin:.4em}"
         " figcaption{font-size:85%;color:#555} .tok{padding:1px 2px;margin:1px;border-radius:3px;"
         "display:inline-block;font-family:monospace} .note{color:#666}")


def _json(path: Path) -> dict[str, Any]:
    return read_run_json(path) if path.is_file() else {}


def _kind(path: Path) -> str:
    if (path / FINETUNE_INFO).is_file():
        info = _json(path / FINETUNE_INFO)
        return f"fine-tune: {info.get('kind')} ({info.get('problem')}), method {info.get('method')}"
    if (path / VISION_INFO).is_file():
        info = _json(path / VISION_INFO)
        return f"image run: {info.get('task')} with {info.get('family')}"
    if (path / "source.json").is_file():
        return "imported checkpoint"
    objective = load_yaml(path / "config.yaml").get("objective") or {}
    return f"pretraining ({objective.get('name', 'causal_lm') if isinstance(objective, dict) else objective})"


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n" if body else ""


def _summary(path: Path) -> str:
    parts = []
    for name in ("summary.json", FINETUNE_INFO, VISION_INFO):
        info = _json(path / name)
        if info:
            shown = {k: v for k, v in info.items() if k not in ("model", "labels", "class_names", "lora_layers")}
            parts.append(f"<h3>{name}</h3>{scalar_table(shown)}")
    return "".join(parts)


def _curves(path: Path) -> str:
    png = curves_png(read_metric_records(path / "metrics.jsonl"), path.name)
    if png is None:
        return '<p class="note">no metrics.jsonl records</p>'
    return (f'<figure><img src="{png_data_uri(png)}" alt="training curves">'
            "<figcaption>metrics.jsonl</figcaption></figure>")


def _metrics(path: Path, evals: dict[str, Any]) -> str:
    parts = []
    final = (_json(path / FINETUNE_INFO).get("best_validation") or _json(path / VISION_INFO).get("best_validation")
             or _json(path / "summary.json").get("val_metrics"))
    if final:
        parts.append(f"<h3>final validation (best step)</h3>{scalar_table(final)}")
    for name in sorted(evals, key=lambda n: (n != "test", n)):
        entry = evals[name]
        if name in ("groups", "training") or not isinstance(entry, dict):
            continue
        values = entry.get("metrics") if isinstance(entry.get("metrics"), dict) else entry
        count = entry.get("examples") or entry.get("images")
        title = f"{name}" + (f" ({count:,} examples)" if isinstance(count, int) else "")
        parts.append(f"<h3>{html.escape(title)}</h3>{scalar_table(values)}")
    return "".join(parts)


def _groups(evals: dict[str, Any]) -> str:
    entry = evals.get("groups")
    if not isinstance(entry, dict) or not isinstance(entry.get("per_group"), dict):
        return ""
    keys = [k for k in ("examples", "accuracy", "f1_macro", "positive_rate")
            if any(k in row for row in entry["per_group"].values())]
    head = "".join(f"<th>{k}</th>" for k in keys)
    rows = "".join(f"<tr><th>{html.escape(str(g))}</th>" + "".join(
        f'<td class="num">{row[k]:.4f}</td>' if isinstance(row.get(k), float) else f'<td class="num">{row.get(k)}</td>'
        for k in keys) + "</tr>" for g, row in entry["per_group"].items())
    gaps = {f"largest {m} gap": g.get("gap") for m, g in (entry.get("gaps") or {}).items()}
    if "demographic_parity_difference" in entry:
        gaps["demographic-parity difference"] = entry["demographic_parity_difference"]
    return (f"<p>by field <b>{html.escape(str(entry.get('field')))}</b> on {html.escape(str(entry.get('source')))}"
            f"</p><table><tr><th>group</th>{head}</tr>{rows}</table>{scalar_table(gaps)}")


def _confusion(evals: dict[str, Any]) -> str:
    test = evals.get("test")
    if isinstance(test, dict) and test.get("confusion_matrix") and test.get("labels"):
        return confusion_table(test["confusion_matrix"], test["labels"])
    return ""


def _pictures(path: Path) -> str:
    pngs = sorted(p for p in (path / "plots").glob("*.png") if p.name != "loss.png")
    shown = [embedded_png(p, p.relative_to(path).as_posix()) for p in pngs[:MAX_PICTURES]]
    more = len(pngs) - len(shown)
    return "".join(shown) + (f'<p class="note">{more} more in plots/</p>' if more > 0 else "")


def _samples(path: Path) -> str:
    if (path / SAMPLES_FILE).is_file():
        try:
            samples = json.loads((path / SAMPLES_FILE).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path / SAMPLES_FILE}: unreadable ({err}); delete it (the samples are left "
                                  "out) or copy it again") from None
        samples = samples if isinstance(samples, list) else []
        return "".join(f"<h3>sample {i}</h3><pre>{html.escape(str(s))}</pre>"
                       for i, s in enumerate(samples[:MAX_SAMPLES], 1))
    for name in ("samples_test.tsv", "samples_test.jsonl"):
        if (path / name).is_file():
            lines = (path / name).read_text(encoding="utf-8", errors="replace").splitlines()
            shown = lines[:MAX_SAMPLES + (name.endswith(".tsv"))]  # + the TSV's header
            return f"<p>first lines of {name}</p><pre>{html.escape(chr(10).join(shown))}</pre>"
    return ""


def _explanations(path: Path) -> str:
    folder = path / "explain"
    parts = []
    report = _json(folder / "attributions.json")
    for i, record in enumerate(report.get("inputs") or []):
        rows = "".join(f"<tr><th>{html.escape(m)}</th><td>{coloured_tokens(record['tokens'], v)}</td></tr>"
                       for m, v in (record.get("attributions") or {}).items())
        parts.append(f"<h3>input {i}: predicted {html.escape(str(record.get('predicted')))}, target "
                     f"{html.escape(str(record.get('target')))}</h3><p>{html.escape(str(record.get('text')))}</p>"
                     f"<table>{rows}</table>")
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    parts += [embedded_png(p, p.relative_to(path).as_posix()) for p in pngs[:MAX_PICTURES]]
    return "".join(parts)


def build_report(run_dir: str | Path) -> str:
    """The report page of ``run_dir`` as HTML text (see the module docstring for its sections)."""
    path = Path(run_dir)
    if not (path / "config.yaml").is_file():
        raise CheckpointError(f"{path}: not a run directory (no config.yaml); pass a folder written by "
                              "`fromzero pretrain`, `fromzero finetune` or `fromzero train`")
    config = (path / "config.yaml").read_text(encoding="utf-8", errors="replace")
    evals = _json(path / "eval.json")
    body = [f"<h1>{html.escape(path.name)}</h1><p>{html.escape(_kind(path))} &middot; "
            f"{html.escape(str(path.resolve()))}</p>",
            _section("config (resolved recipe)", f"<details open><summary>config.yaml</summary><pre>"
                     f"{html.escape(config)}</pre></details>"),
            _section("summary", _summary(path)), _section("curves", _curves(path)),
            _section("metrics", _metrics(path, evals)), _section("per-group metrics", _groups(evals)),
            _section("confusion matrix (test)", _confusion(evals)), _section("pictures", _pictures(path)),
            _section("samples", _samples(path)), _section("explanations", _explanations(path))]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(path.name)}: "
            f"report</title><style>{STYLE}</style></head><body>\n{''.join(body)}</body></html>\n")


def write_report(run_dir: str | Path, samples: list[str] | None = None) -> Path:
    """Write ``run_dir/report.html`` (atomically); ``samples`` (pretraining) are kept in samples.json first."""
    path = Path(run_dir)
    if samples is not None:
        write_text(path / SAMPLES_FILE, json.dumps(list(samples), ensure_ascii=False, indent=1))
    out = path / REPORT_FILE
    write_text(out, build_report(path))
    return out
