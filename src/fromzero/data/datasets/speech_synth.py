"""Synthetic speech for offline speech recognition: text -> a 16 kHz mono WAV spoken by espeak-ng.

espeak-ng (https://github.com/espeak-ng/espeak-ng, a formant synthesiser; Debian package ``espeak-ng``,
installed by ``scripts/install_espeak.sh``) speaks text with a chosen voice (``espeak-ng --voices``; a variant
such as ``en-us+f3`` changes the speaker), speed in words per minute (80-450) and pitch (0-99). It writes
22.05 kHz 16-bit mono; the waveform is resampled to ``sample_rate`` (16 kHz) with the windowed-sinc resampler
of ``data/audio_resample.py`` and written with ``data/audio_features.write_wav``.

Optional additive white Gaussian noise at a signal-to-noise ratio in dB, seeded::

    n ~ N(0, 1) (seeded generator),  n <- n * sqrt(P_x / (P_n 10^(snr_db / 10))),  P = mean(v^2)

so the mixture ``x + n`` has exactly the requested SNR (before the final clipping to [-1, 1]).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from fromzero.data.audio_features import read_wav, write_wav
from fromzero.data.audio_resample import resample
from fromzero.errors import ConfigError, DataError

ESPEAK = "espeak-ng"
INSTALL = "bash scripts/install_espeak.sh (or apt-get install espeak-ng)"
SPEED_RANGE = (80, 450)  # words per minute, espeak-ng's accepted range
PITCH_RANGE = (0, 99)
TIMEOUT_S = 60


def espeak_binary() -> str:
    """The espeak-ng executable, or a DataError saying how to install it."""
    found = shutil.which(ESPEAK)
    if found is None:
        raise DataError(f"{ESPEAK} is not installed (it synthesizes the speech data): {INSTALL}")
    return found


def available_voices(language: str | None = None) -> list[str]:
    """Voice names espeak-ng lists (``espeak-ng --voices[=LANG]``), e.g. ``en-us``, ``en-gb-scotland``."""
    command = [espeak_binary(), f"--voices={language}" if language else "--voices"]
    listing = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False).stdout
    voices = []
    for line in listing.splitlines()[1:]:  # the first line is the table header
        fields = line.split()
        if len(fields) >= 2 and fields[1] not in voices:
            voices.append(fields[1])
    return voices


def add_noise(waveform: torch.Tensor, snr_db: float, seed: int = 0) -> torch.Tensor:
    """``waveform`` (..., N) plus seeded white Gaussian noise at exactly ``snr_db`` dB SNR (module docstring)."""
    signal_power = waveform.double().square().mean()
    if float(signal_power) == 0.0:
        raise DataError("cannot add noise at an SNR to a silent waveform (its power is 0)")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(waveform.shape, generator=generator, dtype=torch.float64)
    noise = noise * torch.sqrt(signal_power / (noise.square().mean() * 10.0 ** (snr_db / 10.0)))
    return (waveform.double() + noise).to(waveform.dtype)


def _check_voice_settings(text: str, speed: int, pitch: int) -> None:
    if not text.strip():
        raise DataError("nothing to synthesize: the text is empty")
    if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise ConfigError(f"espeak-ng speed {speed} wpm is out of range; choose {SPEED_RANGE[0]}-{SPEED_RANGE[1]}")
    if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        raise ConfigError(f"espeak-ng pitch {pitch} is out of range; choose {PITCH_RANGE[0]}-{PITCH_RANGE[1]}")


def synthesize_waveform(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50,
                        sample_rate: int = 16000, snr_db: float | None = None, seed: int = 0) -> torch.Tensor:
    """Speak ``text`` with espeak-ng -> mono float32 waveform (N,) at ``sample_rate``, with optional noise."""
    _check_voice_settings(text, speed, pitch)
    binary = espeak_binary()
    with tempfile.TemporaryDirectory(prefix="fromzero-espeak-") as tmp:
        raw = Path(tmp) / "espeak.wav"
        # the text goes through stdin, so a sentence starting with "-" is never read as an option
        command = [binary, "-w", str(raw), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdin"]
        done = subprocess.run(command, input=text, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        if done.returncode != 0 or not raw.is_file():
            said = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()[0]
            raise DataError(f"{ESPEAK} failed for voice {voice!r}: {said}; list voices with `espeak-ng --voices`")
        audio, rate = read_wav(raw, sample_rate=None, channels=1)  # (1, N) at 22.05 kHz
    if audio.shape[-1] == 0:
        raise DataError(f"{ESPEAK} produced no audio for {text[:40]!r} with voice {voice!r}")
    waveform = resample(audio[0], rate, sample_rate)  # (N',)
    if snr_db is not None:
        waveform = add_noise(waveform, snr_db, seed)
    return waveform


def synthesize(text: str, path: str | Path, voice: str = "en-us", speed: int = 160, pitch: int = 50,
               sample_rate: int = 16000, snr_db: float | None = None, seed: int = 0) -> Path:
    """Speak ``text`` into a 16-bit mono WAV file at ``path`` (``sample_rate`` Hz); see :func:`synthesize_waveform`."""
    waveform = synthesize_waveform(text, voice, speed, pitch, sample_rate, snr_db, seed)
    return write_wav(path, waveform, sample_rate)
