"""A finished speech run, loaded for transcription: model, characters, features and decoding settings.

A speech run directory holds ``speech.json`` (task, family, model config, characters, log-mel settings,
decoding), ``model.safetensors`` and ``config.yaml``; anything else is refused in one line. No training code
is imported, so a server could load runs through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fromzero.data.audio_features import LogMelConfig, log_mel, read_wav
from fromzero.data.speech_batches import collate
from fromzero.data.speech_text import CharVocabulary
from fromzero.errors import CheckpointError, DataError
from fromzero.nn.ctc import ctc_beam_decode, ctc_greedy_decode
from fromzero.runs.speech import SPEECH_INFO, build_speech_model, read_speech_info


@dataclass
class SpeechRun:
    """What transcribing needs from a run directory."""

    path: Path
    model: nn.Module
    vocab: CharVocabulary
    mel: LogMelConfig
    info: dict[str, Any]


def load_speech_run(run_dir: str | Path, device: str = "cpu") -> SpeechRun:
    """Open a finished speech run (``fromzero train-speech``); anything else is a one-line CheckpointError."""
    path = Path(run_dir)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such run directory; give the folder `fromzero train-speech` wrote")
    info_path = path / SPEECH_INFO
    if not info_path.is_file():
        raise CheckpointError(f"{path}: not a speech run (no {SPEECH_INFO}); transcribe with a run from "
                              "`fromzero train-speech recipes/speech/ctc_tiny.yaml`")
    info = read_speech_info(path)
    try:
        mel = LogMelConfig(**info["features"])
        vocab = CharVocabulary(info["characters"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{info_path}: unreadable speech run description ({err!r}); retrain the run") from None
    return SpeechRun(path, build_speech_model(path, info, device), vocab, mel, info)


def decode_audio(run: SpeechRun, audio: torch.Tensor, where: str | Path) -> torch.Tensor:
    """A mono (N,) waveform at the run's rate -> its log-mel features (T, n_mels); a DataError naming ``where``
    for an empty one or one longer than the model takes."""
    if audio.shape[-1] == 0:
        raise DataError(f"{where}: the WAV file holds no samples; record some speech")
    features = log_mel(audio, run.mel)  # (T, n_mels)
    max_frames = run.model.config.max_frames
    if features.shape[0] > max_frames:
        step = run.mel.hop_length / run.mel.sample_rate  # seconds per frame
        raise DataError(f"{where}: {features.shape[0] * step:.1f} s is longer than this model takes "
                        f"({max_frames * step:.1f} s); cut the file into shorter pieces")
    return features


@torch.no_grad()
def log_probs_of(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame log-probabilities (B, T', V) and output lengths (B,) of a CTC batch."""
    device = next(model.parameters()).device
    logits, lengths = model(batch["features"].to(device), batch["feature_lengths"].to(device))
    return F.log_softmax(logits.float(), dim=-1).cpu(), lengths.cpu()


def decode_texts(log_probs: torch.Tensor, lengths: torch.Tensor, vocab: CharVocabulary, beam_width: int = 1,
                 insertion_bonus: float = 0.0) -> list[str]:
    """Texts of a batch: greedy for ``beam_width`` 1, else prefix beam search."""
    if beam_width == 1:
        ids = ctc_greedy_decode(log_probs, lengths)
    else:
        ids = ctc_beam_decode(log_probs, lengths, beam_width=beam_width, insertion_bonus=insertion_bonus)
    return [vocab.decode(row) for row in ids]


def transcribe_features(run: SpeechRun, features: list[torch.Tensor], beam_width: int | None = None,
                        batch_size: int = 16) -> list[str]:
    """Texts of log-mel feature matrices (each (T_i, n_mels), from :func:`decode_audio`), in batches;
    ``beam_width`` None: the run's ``decode.beam_width``."""
    decode = run.info.get("decode", {})
    width = beam_width if beam_width is not None else int(decode.get("beam_width", 1))
    texts: list[str] = []
    for start in range(0, len(features), batch_size):
        batch = collate(features[start:start + batch_size], [[] for _ in features[start:start + batch_size]])
        log_probs, lengths = log_probs_of(run.model, batch)
        texts += decode_texts(log_probs, lengths, run.vocab, width, float(decode.get("insertion_bonus", 0.0)))
    return texts


def transcribe_file(run: SpeechRun, wav: str | Path, beam_width: int | None = None) -> str:
    """The transcript of one 16-bit mono WAV at the run's sample rate (another rate or stereo: a DataError)."""
    audio, _ = read_wav(wav, sample_rate=run.mel.sample_rate, channels=1)  # (1, N)
    return transcribe_features(run, [decode_audio(run, audio[0], wav)], beam_width)[0]
