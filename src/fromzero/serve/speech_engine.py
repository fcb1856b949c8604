"""Serving a speech recognition run (``fromzero train-speech``): ``POST /v1/transcriptions``.

A WAV upload travels as base64 text in JSON, as images do (``serve/image_engine.py``), so the request also
names its ``model`` and options like every other route. It reaches the model exactly as ``fromzero transcribe``
reads a file (``speech/inference.py``)::

    bytes    = base64_decode(text)             standard alphabet with padding; a ``data:...;base64,`` prefix is allowed
    waveform = wav(bytes)                      16-bit PCM at the run's sample rate (16 kHz), mono; else a 400
    features = log_mel(waveform)               the run's speech.json settings, (T, n_mels)
    text     = CTC greedy (beam 1) or prefix beam decoding of the model's per-frame log-probabilities

Decoding the upload (:meth:`Transcriber.decode`) runs off the worker thread; the model runs on it
(:class:`TranscriptionTask`, one upload per request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from fromzero.data.audio_features import wav_from_bytes
from fromzero.serve.uploads import base64_bytes
from fromzero.speech.inference import SpeechRun, decode_audio, load_speech_run, transcribe_features


@dataclass(frozen=True)
class TranscriptionTask:
    """What the scheduler's worker runs for ``POST /v1/transcriptions``."""

    features: list[torch.Tensor]  # log-mel (T, n_mels), one per upload
    beam_width: int | None  # None: the run's decode.beam_width


@dataclass(frozen=True)
class DecodedAudio:
    """An upload ready for the model: its features and its length in seconds."""

    features: torch.Tensor  # (T, n_mels)
    duration_s: float


class Transcriber:
    """A speech run ready to serve: checks and decodes WAV uploads, transcribes their features."""

    def __init__(self, run: SpeechRun) -> None:
        self.run = run
        self.sample_rate = run.mel.sample_rate

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> Transcriber:
        return cls(load_speech_run(run_dir))

    def decode(self, text: str, where: str) -> DecodedAudio:
        """Base64 WAV bytes -> the model's input; a one-line DataError starting with ``where`` for text that is
        not base64, bytes that are not a 16-bit PCM WAV, another sample rate, stereo, no samples or too long."""
        data = base64_bytes(text, where, "WAV")
        audio, rate = wav_from_bytes(data, where, sample_rate=self.sample_rate, channels=1)  # (1, N)
        return DecodedAudio(decode_audio(self.run, audio[0], where), audio.shape[1] / rate)

    def transcribe(self, features: Sequence[torch.Tensor], beam_width: int | None) -> list[str]:
        """One transcript per feature matrix (greedy for ``beam_width`` 1; None: the run's setting)."""
        return transcribe_features(self.run, list(features), beam_width)


