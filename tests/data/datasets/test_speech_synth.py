"""Synthetic speech: seeded noise at an exact SNR, one-line errors, and (when espeak-ng is installed) one short
sentence synthesized to a 16 kHz mono WAV whose duration, speed and log-mel energy look like speech. Without
espeak-ng that test skips locally and fails when CI=true (scripts/install_espeak.sh, run by scripts/test.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fromzero.data.audio_features import LogMelConfig, log_mel, mel_filterbank, read_wav
from fromzero.data.datasets import speech_synth
from fromzero.data.datasets.speech_synth import add_noise, available_voices, synthesize, synthesize_waveform
from fromzero.errors import ConfigError, DataError
from speech_runs import require_espeak

SENTENCE = "The quick brown fox jumps over the lazy dog."


def test_noise_has_the_requested_snr_and_seed() -> None:
    t = torch.arange(16000) / 16000
    clean = 0.3 * torch.sin(2 * torch.pi * 220 * t)
    noisy = add_noise(clean, snr_db=10.0, seed=3)
    noise = (noisy - clean).double()
    snr = 10 * torch.log10(clean.double().square().mean() / noise.square().mean())
    assert float(snr) == pytest.approx(10.0, abs=1e-4)
    assert torch.equal(noisy, add_noise(clean, 10.0, seed=3)) and not torch.equal(noisy, add_noise(clean, 10.0, 4))
    with pytest.raises(DataError, match="silent waveform"):
        add_noise(torch.zeros(10), 5.0)


def test_missing_espeak_names_the_install_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech_synth.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="espeak-ng is not installed .*: bash scripts/install_espeak.sh"):
        synthesize_waveform(SENTENCE)


def test_bad_settings_fail_before_running() -> None:
    with pytest.raises(ConfigError, match="speed 20 wpm is out of range; choose 80-450"):
        synthesize_waveform(SENTENCE, speed=20)
    with pytest.raises(ConfigError, match="pitch 120 is out of range"):
        synthesize_waveform(SENTENCE, pitch=120)
    with pytest.raises(DataError, match="the text is empty"):
        synthesize_waveform("  ")




def test_real_synthesis_sounds_like_speech(tmp_path: Path) -> None:
    require_espeak()
    path = synthesize(SENTENCE, tmp_path / "fox.wav", voice="en-us", speed=160, pitch=50)
    audio, rate = read_wav(path, sample_rate=16000, channels=1)  # raises unless 16 kHz mono 16-bit
    seconds = audio.shape[1] / rate
    assert 1.5 < seconds < 5.0, seconds  # 9 words at 160 wpm ~ 3.4 s
    features = log_mel(audio[0].double(), LogMelConfig())  # (T, 80)
    frame_db = 10 * torch.log10(features.exp().sum(1))  # energy per frame
    assert float((frame_db > frame_db.max() - 30).double().mean()) > 0.5  # mostly sound, not silence
    centres = mel_filterbank(16000, 400, 80).argmax(1) * 40.0  # Hz of each filter's peak bin
    energy = features.exp().sum(0)
    assert float(energy[centres < 4000].sum() / energy.sum()) > 0.95  # speech sits below 4 kHz (white noise: 0.78)
    fast = synthesize_waveform(SENTENCE, speed=320)
    assert fast.shape[0] < 0.7 * audio.shape[1]  # the speed reaches espeak-ng
    high = synthesize_waveform(SENTENCE, pitch=90)
    assert not torch.equal(high, audio[0]) and abs(high.shape[0] - audio.shape[1]) < 0.2 * audio.shape[1]
    noisy = synthesize_waveform(SENTENCE, snr_db=5.0, seed=1)
    assert noisy.shape[0] == audio.shape[1] and float((noisy - audio[0]).abs().mean()) > 1e-3
    assert "en-us" in available_voices("en")
    with pytest.raises(DataError, match="espeak-ng failed for voice 'xx-nowhere'"):
        synthesize_waveform(SENTENCE, voice="xx-nowhere")
