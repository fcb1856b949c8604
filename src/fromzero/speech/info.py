"""``fromzero info`` on a speech run: the model, its features and characters, its training and its scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fromzero.runs import load_run, read_run_json
from fromzero.train.loggers import read_metrics

EVAL_FILE = "eval.json"


def _scores(name: str, entry: dict[str, Any]) -> str:
    greedy, beam = entry.get("greedy") or {}, entry.get("beam") or {}
    voices = ", ".join(entry.get("voices") or []) or "?"
    return (f"{name} ({entry.get('utterances')} utterances; voices {voices}): greedy WER {greedy.get('wer', 0):.3f} "
            f"CER {greedy.get('cer', 0):.3f} | beam {entry.get('beam_width')} WER {beam.get('wer', 0):.3f} "
            f"CER {beam.get('cer', 0):.3f}")


def _best_validation(path: Path) -> str | None:
    """The lowest validation CTC loss in metrics.jsonl and its step (the run keeps its final weights)."""
    if not (path / "metrics.jsonl").is_file():
        return None
    rows = [m for m in read_metrics(path / "metrics.jsonl") if "val_loss" in m]
    if not rows:
        return None
    best = min(rows, key=lambda m: m["val_loss"])
    return f"best validation loss {best['val_loss']:.4f} at step {best['step']} (of {len(rows)} evaluations)"


def describe_speech_run(run_dir: str | Path) -> list[str]:
    """Lines describing a speech run: model and preset, features, characters, data, training, WER / CER."""
    path = Path(run_dir)
    run = load_run(path, with_weights=False)
    info = run.speech or {}
    cfg, mel, chars = info["model"], info["features"], info["characters"]
    preset = (run.config.get("model") or {}).get("name", info["family"])
    counts = info.get("utterances") or {}
    rate, hop, n_fft = mel["sample_rate"], mel["hop_length"], mel["n_fft"]
    lines = [f"speech run: {preset} ({info['family']} family, {info.get('parameters', 0):,} parameters): "
             f"{cfg['n_layer']} blocks, d_model {cfg['d_model']}, {cfg['n_head']} heads, {cfg['conv_channels']} conv "
             f"channels, at most {cfg['max_frames']} frames ({cfg['max_frames'] * hop / rate:.0f} s)",
             f"features: {mel['n_mels']} log-mel bins, {rate} Hz, {1000 * n_fft / rate:.0f} ms windows "
             f"(n_fft {n_fft}) every {1000 * hop / rate:.0f} ms (hop {hop}), {mel['scale']} scale"
             + (", normalised per utterance" if mel.get("normalize") else ""),
             f"vocabulary: {len(chars) + 1} symbols: blank + {len(chars)} characters {chars!r}",
             f"data: {info.get('data')}; utterances train / validation / test {counts.get('train')} / "
             f"{counts.get('validation')} / {counts.get('test')}",
             f"training: {info.get('steps')} steps, {info.get('train_wall_s', 0):.0f}s on {info.get('device')}; "
             f"final train loss {info.get('train_loss', float('nan')):.4f}, validation loss "
             f"{info.get('val_loss') or float('nan'):.4f}"]
    best = _best_validation(path)
    if best:
        lines.append(best)
    decode = info.get("decode") or {}
    lines.append(f"decoding: prefix beam {decode.get('beam_width')} (insertion bonus {decode.get('insertion_bonus')})")
    scores = read_run_json(path / EVAL_FILE) if (path / EVAL_FILE).is_file() else {}
    lines += [_scores(split, scores[split]) for split in ("validation", "test") if isinstance(scores.get(split), dict)]
    if not any(split in scores for split in ("validation", "test")):
        lines.append(f"scores: none yet (no {EVAL_FILE}); `fromzero eval {path}` computes them")
    return lines
