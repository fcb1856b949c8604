"""Speech input: 16-bit PCM WAV files <-> float waveforms, and log-mel features in pure torch.

WAV files are read and written with the standard library's ``wave`` module (16-bit PCM only); samples
become floats ``x / 32768`` in ``[-1, 1)``, shaped ``(C, N)``. A file whose sample rate or channel count
is not the one asked for is a one-line :class:`DataError` naming both and the conversion command.

Log-mel features (the input of most speech recognisers since the 1980s; Davis & Mermelstein 1980)::

    X[f, t]   = sum_n w[n] x[t*hop + n - n_fft/2] exp(-2 pi i f n / n_fft)   STFT, periodic Hann window w,
                                                                            the signal zero-padded by n_fft/2
    P[f, t]   = |X[f, t]|^2                                                 power, f = 0 .. n_fft/2
    M[m, t]   = sum_f W[m, f] P[f, t]                                       W: the mel filterbank (n_mels, n_freqs)
    L[t, m]   = log(M[m, t] + eps)                                          returned time-major, (T, n_mels)
    optional per-utterance normalisation per mel bin:  (L - mean_t L) / (std_t L + 1e-5)

The filterbank W is built by hand exactly as librosa.filters.mel (and Slaney's Auditory Toolbox): n_mels + 2
points equally spaced on the mel scale between f_min and f_max, converted back to Hz, and triangle m rising
from point m to m+1 and falling to m+2, evaluated at the FFT bin frequencies ``f * sr / n_fft``. The mel
scale is Slaney's by default (linear below 1 kHz: mel = 3 f / 200; logarithmic above:
mel = 15 + 27 ln(f / 1000) / ln 6.4), or HTK's (mel = 2595 log10(1 + f / 700)) with ``scale="htk"``.
``norm="slaney"`` scales each triangle by 2 / (its width in Hz), so every filter has the same area
(constant energy per band); ``norm=None`` leaves peaks at 1. The defaults (16 kHz, n_fft 400 = 25 ms,
hop 160 = 10 ms, 80 mels, Slaney scale and norm) are those of Whisper and most CTC recipes; frames
number ``1 + N // hop`` (the window is centred on each frame).
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass
from pathlib import Path

import torch

from fromzero.atomic import write_with
from fromzero.errors import ConfigError, DataError

MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney", None)


def _convert_hint(path: Path, rate: int | None, channels: int | None) -> str:
    ar = f" -ar {rate}" if rate else ""
    ac = f" -ac {channels}" if channels else ""
    return (f"convert it, e.g. `ffmpeg -i {path.name}{ar}{ac} -sample_fmt s16 out.wav` or "
            f"`sox {path.name}{' -r ' + str(rate) if rate else ''}{' -c ' + str(channels) if channels else ''} "
            f"-b 16 out.wav`")


def read_wav(path: str | Path, sample_rate: int | None = 16000, channels: int | None = 1) -> tuple[torch.Tensor, int]:
    """Read a 16-bit PCM WAV file as float32 ``(C, N)`` in [-1, 1) and its sample rate.

    ``sample_rate`` / ``channels``: what the caller needs (None accepts any); a file with another rate or
    channel count, another sample width, or that is not a WAV file is a DataError naming the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such audio file; give a 16-bit PCM WAV file")
    return _parse_wav(str(path), path, sample_rate, channels)


def wav_from_bytes(data: bytes, name: str, sample_rate: int | None = 16000,
                   channels: int | None = 1) -> tuple[torch.Tensor, int]:
    """:func:`read_wav` for a WAV file's bytes (an upload); its errors start with ``name``."""
    return _parse_wav(io.BytesIO(data), Path(name), sample_rate, channels)


def _parse_wav(source: str | io.BytesIO, path: Path, sample_rate: int | None,
               channels: int | None) -> tuple[torch.Tensor, int]:
    try:
        with wave.open(source, "rb") as wav:
            rate, n_channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as err:
        detail = f" ({err})" if str(err) else " (it ends before its header does)"
        raise DataError(f"{path}: not a PCM WAV file{detail}; {_convert_hint(path, sample_rate, channels)}") from None
    if width != 2:
        raise DataError(f"{path}: {8 * width}-bit samples, expected 16-bit PCM; "
                        f"{_convert_hint(path, sample_rate, channels)}")
    if (sample_rate is not None and rate != sample_rate) or (channels is not None and n_channels != channels):
        raise DataError(f"{path}: {rate} Hz with {n_channels} channel(s), expected {sample_rate or rate} Hz with "
                        f"{channels or n_channels} channel(s); {_convert_hint(path, sample_rate, channels)}")
    samples = torch.frombuffer(bytearray(frames), dtype=torch.int16) if frames else torch.zeros(0, dtype=torch.int16)
    samples = samples.reshape(-1, n_channels).t().contiguous()  # (C, N), the file interleaves channels
    return samples.float() / 32768.0, rate


def write_wav(path: str | Path, waveform: torch.Tensor, sample_rate: int) -> Path:
    """Write ``waveform`` ((N,) mono or (C, N), floats in [-1, 1], clipped) as a 16-bit PCM WAV file, atomically."""
    path = Path(path)
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2:
        raise DataError(f"{path}: a waveform to write must be (N,) or (C, N), got {tuple(waveform.shape)}")
    pcm = (waveform.detach().double().clamp(-1.0, 1.0) * 32767.0).round().to(torch.int16)  # (C, N)
    data = pcm.t().contiguous().numpy().astype("<i2").tobytes()  # interleaved frames, little-endian

    def write(tmp: Path) -> None:
        with wave.open(str(tmp), "wb") as wav:
            wav.setnchannels(pcm.shape[0])
            wav.setsampwidth(2)
            wav.setframerate(int(sample_rate))
            wav.writeframes(data)

    write_with(path, write)
    return path


def hz_to_mel(hz: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    """Frequencies in Hz -> mels on the Slaney (librosa's default, htk=False) or HTK scale."""
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    linear = 3.0 * hz / 200.0
    log_part = 15.0 + torch.log(torch.clamp(hz, min=1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(hz >= 1000.0, log_part, linear)


def mel_to_hz(mel: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    """Mels -> Hz, the inverse of :func:`hz_to_mel`."""
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = 200.0 * mel / 3.0
    log_part = 1000.0 * torch.exp((math.log(6.4) / 27.0) * (mel - 15.0))
    return torch.where(mel >= 15.0, log_part, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
                   scale: str = "slaney", norm: str | None = "slaney",
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The triangular mel filterbank ``(n_mels, n_fft // 2 + 1)``, equal to ``librosa.filters.mel``."""
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    if scale not in MEL_SCALES or norm not in MEL_NORMS:
        raise ConfigError(f"mel scale must be one of {MEL_SCALES} and norm one of {MEL_NORMS}, got {scale!r}, {norm!r}")
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ConfigError(f"mel band [{f_min}, {f_max}] Hz must satisfy 0 <= f_min < f_max <= {sample_rate / 2} "
                          "(half the sample rate)")
    fft_hz = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    edges = torch.tensor([f_min, f_max], dtype=torch.float64)
    mels = torch.linspace(*hz_to_mel(edges, scale).tolist(), n_mels + 2, dtype=torch.float64)
    points = mel_to_hz(mels, scale)  # (n_mels + 2,) filter edges and centres in Hz
    widths = points.diff()  # (n_mels + 1,)
    ramps = points[:, None] - fft_hz[None, :]  # (n_mels + 2, F)
    rising = -ramps[:-2] / widths[:-1, None]  # (n_mels, F)
    falling = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if norm == "slaney":
        weights = weights * (2.0 / (points[2:] - points[:-2]))[:, None]
    return weights.to(dtype)


@dataclass(frozen=True)
class LogMelConfig:
    """How a waveform becomes log-mel features (see the module docstring for each step)."""

    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    scale: str = "slaney"
    norm: str | None = "slaney"
    eps: float = 1e-10
    normalize: bool = False  # per-utterance mean/variance normalisation of each mel bin
    pad_mode: str = "constant"  # centred frames pad the signal with zeros (librosa >= 0.10); or "reflect"


def frame_count(n_samples: int, hop_length: int = 160) -> int:
    """Frames of a centred STFT over ``n_samples`` samples: ``1 + n_samples // hop_length``."""
    return 1 + n_samples // hop_length


def log_mel(waveform: torch.Tensor, config: LogMelConfig = LogMelConfig()) -> torch.Tensor:
    """Log-mel features of ``waveform`` (..., N) -> (..., T, n_mels), T = 1 + N // hop; dtype follows the input."""
    if waveform.shape[-1] == 0:
        raise DataError("an empty waveform has no log-mel features; the audio file has no samples")
    dtype = waveform.dtype if waveform.is_floating_point() else torch.float32
    batch_shape = waveform.shape[:-1]
    flat = waveform.reshape(-1, waveform.shape[-1]).to(dtype)  # (B, N)
    pad_mode = config.pad_mode
    if pad_mode == "reflect" and flat.shape[-1] <= config.n_fft // 2:
        pad_mode = "constant"  # reflection needs more samples than the padding
    window = torch.hann_window(config.n_fft, periodic=True, dtype=dtype, device=flat.device)
    spec = torch.stft(flat, config.n_fft, hop_length=config.hop_length, window=window, center=True,
                      pad_mode=pad_mode, return_complex=True)  # (B, F, T)
    power = spec.real.square() + spec.imag.square()
    bank = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max,
                          config.scale, config.norm, dtype=dtype).to(flat.device)  # (n_mels, F)
    mel = torch.matmul(bank, power)  # (B, n_mels, T)
    features = torch.log(mel + config.eps).transpose(1, 2)  # (B, T, n_mels)
    if config.normalize:
        features = normalize_features(features)
    return features.reshape(*batch_shape, *features.shape[-2:])


def normalize_features(features: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean/variance normalisation over time: (..., T, F), each bin (x - mean_t) / (std_t + 1e-5)."""
    mean = features.mean(dim=-2, keepdim=True)
    std = features.std(dim=-2, unbiased=False, keepdim=True)
    return (features - mean) / (std + 1e-5)
