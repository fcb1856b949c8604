"""WAV files and log-mel features: a round trip through the stdlib ``wave`` writer, one-line errors for a wrong
rate / channel count / sample width, the hand-built mel filterbank against librosa.filters.mel and a naive
triangle formula, and log-mel of a sine sweep against librosa.feature.melspectrogram and a naive numpy STFT."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from fromzero.data.audio_features import LogMelConfig, frame_count, log_mel, mel_filterbank, read_wav, write_wav
from fromzero.errors import DataError


def _write_with_wave(path: Path, samples: np.ndarray, rate: int, width: int = 2) -> None:
    """samples: (N, C) int16 (or int8-range bytes for width 1), written with the stdlib only."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(samples.shape[1])
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2" if width == 2 else "u1").tobytes())


def test_wav_round_trip_with_the_stdlib(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stereo = rng.integers(-32768, 32767, size=(1234, 2)).astype(np.int16)
    _write_with_wave(tmp_path / "s.wav", stereo, 22050)
    audio, rate = read_wav(tmp_path / "s.wav", sample_rate=22050, channels=2)
    assert rate == 22050 and audio.shape == (2, 1234) and audio.dtype == torch.float32
    np.testing.assert_array_equal((audio * 32768).round().numpy().astype(np.int16), stereo.T)  # channel order kept
    # our writer, read back by the stdlib
    wave_in = torch.tensor([[0.0, 0.5, -0.5, 1.0, -1.0, 2.0]])
    write_wav(tmp_path / "w.wav", wave_in, 16000)
    with wave.open(str(tmp_path / "w.wav"), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        raw = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert raw.tolist() == [0, 16384, -16384, 32767, -32767, 32767]  # 0.5 * 32767 rounds half to even; clipped


@pytest.mark.parametrize(("rate", "channels", "message"), [
    (22050, 1, r"22050 Hz with 1 channel\(s\), expected 16000 Hz with 1 channel\(s\); convert it, e.g. `ffmpeg "
               r"-i bad.wav -ar 16000 -ac 1"),
    (16000, 2, r"16000 Hz with 2 channel\(s\), expected 16000 Hz with 1 channel\(s\).*sox bad.wav -r 16000 -c 1"),
])
def test_wrong_rate_or_channels_is_one_line(tmp_path: Path, rate: int, channels: int, message: str) -> None:
    _write_with_wave(tmp_path / "bad.wav", np.zeros((100, channels), dtype=np.int16), rate)
    with pytest.raises(DataError, match=message) as err:
        read_wav(tmp_path / "bad.wav", sample_rate=16000, channels=1)
    assert "\n" not in str(err.value) and str(tmp_path / "bad.wav") in str(err.value)


def test_other_bad_files(tmp_path: Path) -> None:
    _write_with_wave(tmp_path / "u8.wav", np.zeros((10, 1), dtype=np.uint8), 16000, width=1)
    with pytest.raises(DataError, match="8-bit samples, expected 16-bit PCM"):
        read_wav(tmp_path / "u8.wav")
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(DataError, match="text.wav: not a PCM WAV file"):
        read_wav(tmp_path / "text.wav")
    with pytest.raises(DataError, match="no such audio file"):
        read_wav(tmp_path / "missing.wav")


def _naive_filterbank(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float, htk: bool) -> np.ndarray:
    """Triangles written out point by point, Slaney-normalised; the mel scale from its textbook formula."""
    def to_mel(f: float) -> float:
        if htk:
            return 2595.0 * math.log10(1.0 + f / 700.0)
        return 3.0 * f / 200.0 if f < 1000.0 else 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)

    def to_hz(m: float) -> float:
        if htk:
            return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
        return 200.0 * m / 3.0 if m < 15.0 else 1000.0 * 6.4 ** ((m - 15.0) / 27.0)

    lo_mel, hi_mel = to_mel(f_min), to_mel(f_max)
    points = [to_hz(lo_mel + (hi_mel - lo_mel) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        lo, centre, hi = points[m], points[m + 1], points[m + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            if lo <= f <= centre:
                out[m, k] = (f - lo) / (centre - lo)
            elif centre < f <= hi:
                out[m, k] = (hi - f) / (hi - centre)
        out[m] *= 2.0 / (hi - lo)
    return out


@pytest.mark.parametrize("htk", [False, True])
def test_filterbank_equals_the_triangle_formula(htk: bool) -> None:
    mine = mel_filterbank(16000, 400, 40, 20.0, 7600.0, scale="htk" if htk else "slaney").numpy()
    np.testing.assert_allclose(mine, _naive_filterbank(16000, 400, 40, 20.0, 7600.0, htk), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("sr", "n_fft", "n_mels", "f_min", "f_max"), [(16000, 400, 80, 0.0, None),
                                                                       (22050, 512, 40, 50.0, 8000.0)])
@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
def test_filterbank_equals_librosa(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None, htk: bool,
                                   norm: str | None) -> None:
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=htk, norm=norm,
                              dtype=np.float64)
    mine = mel_filterbank(sr, n_fft, n_mels, f_min, f_max, "htk" if htk else "slaney", norm).numpy()
    np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-13)


def _sweep(seconds: float = 1.3, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return 0.5 * np.sin(2 * np.pi * (100.0 * t + (4000.0 - 100.0) / (2 * seconds) * t**2))  # 100 Hz -> 4 kHz


def test_log_mel_of_a_sweep_equals_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    y = _sweep()
    for htk, pad_mode in ((False, "constant"), (True, "reflect")):
        config = LogMelConfig(scale="htk" if htk else "slaney", pad_mode=pad_mode)
        ref = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=400, hop_length=160, window="hann", center=True,
                                             pad_mode=pad_mode, power=2.0, n_mels=80, htk=htk, norm="slaney")
        mine = log_mel(torch.from_numpy(y), config).numpy()  # (T, 80)
        assert mine.shape == (frame_count(len(y)), 80) == ref.T.shape
        np.testing.assert_allclose(mine, np.log(ref.T + 1e-10), atol=1e-6)


def test_log_mel_equals_a_naive_numpy_stft() -> None:
    y = _sweep(0.2)
    n_fft, hop = 400, 160
    padded = np.pad(y, n_fft // 2)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = [padded[t * hop: t * hop + n_fft] * window for t in range(1 + len(y) // hop)]
    power = np.abs(np.fft.rfft(np.stack(frames), axis=1)) ** 2  # (T, F)
    ref = np.log(power @ _naive_filterbank(16000, n_fft, 80, 0.0, 8000.0, htk=False).T + 1e-10)
    np.testing.assert_allclose(log_mel(torch.from_numpy(y)).numpy(), ref, atol=1e-6)


def test_batches_dtype_and_normalisation() -> None:
    rng = np.random.default_rng(1)
    y = torch.from_numpy(rng.standard_normal((2, 3, 1600))).float()
    batched = log_mel(y)
    assert batched.shape == (2, 3, 11, 80) and batched.dtype == torch.float32
    torch.testing.assert_close(batched[1, 2], log_mel(y[1, 2]))
    normed = log_mel(y[0, 0], LogMelConfig(normalize=True))
    raw = log_mel(y[0, 0])
    expected = (raw - raw.mean(0)) / (raw.std(0, unbiased=False) + 1e-5)  # per mel bin over time
    torch.testing.assert_close(normed, expected)
    torch.testing.assert_close(normed.mean(0), torch.zeros(80), atol=1e-5, rtol=0)
    with pytest.raises(DataError, match="empty waveform"):
        log_mel(torch.zeros(0))
