"""A speech set that needs no espeak-ng (tones standing in for words) and a tiny speech run trained on it.

Each utterance is a 0.4 s sine tone (16 kHz mono WAV) per word, 0.1 s of silence between words; its transcript
names the words ("la" = 440 Hz, "mi" = 660 Hz, "do" = 262 Hz). Used where a real speech run is needed only as a
run directory (transcribe errors, bad inputs), not for its accuracy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from fromzero.data.audio_features import write_wav
from fromzero.speech.runner import train_speech

TONES = {"la": 440.0, "mi": 660.0, "do": 262.0}
TRANSCRIPTS = {"train": ["la mi", "mi do", "do la", "la"], "validation": ["mi la"], "test": ["do mi"]}
RATE = 16000
#: overrides that keep a speech run to about a second
TINY_SPEECH = ["--model.n_layer=1", "--model.d_model=32", "--model.n_head=2", "--model.conv_channels=4",
               "--model.dropout=0.0", "--train.max_steps=2", "--train.batch_size=2", "--train.eval_every=2",
               "--train.eval_batches=1", "--train.log_every=1", "--train.ckpt_every=0", "--train.threads=1",
               "--train.precision=fp32", "--decode.beam_width=2"]


def tone_speech(words: list[str], seconds: float = 0.4) -> torch.Tensor:
    """(N,) waveform: one tone per word with 0.1 s of silence after each."""
    t = torch.arange(int(seconds * RATE)) / RATE
    parts = []
    for word in words:
        parts += [0.3 * torch.sin(2 * math.pi * TONES[word] * t), torch.zeros(RATE // 10)]
    return torch.cat(parts)


def write_tone_set(folder: Path) -> Path:
    """train/validation/test.jsonl manifests and their WAVs under ``folder``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, texts in TRANSCRIPTS.items():
        rows = []
        for i, text in enumerate(texts):
            path = f"wavs/{split}/{i}.wav"
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            write_wav(folder / path, tone_speech(text.split()), RATE)
            rows.append({"path": path, "text": text, "voice": "tone", "split": split})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def train_tiny_speech(data: Path, run_dir: Path) -> Path:
    """A two-step ctc-speech-tiny run on a tone set; returns the run directory."""
    recipe = Path(__file__).parents[1] / "recipes" / "speech" / "ctc_tiny.yaml"
    train_speech(recipe, [f"--data.dir={data}", *TINY_SPEECH], out=run_dir, progress=False)
    return run_dir


def require_espeak() -> None:
    """Skip where espeak-ng is missing; under CI=true fail instead (scripts/test.sh installs it)."""
    import os
    import shutil

    import pytest

    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed: bash scripts/install_espeak.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI installs it through scripts/test.sh")
        pytest.skip(message)
