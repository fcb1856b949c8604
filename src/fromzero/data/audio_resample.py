"""Changing a waveform's sample rate by a rational factor with a windowed-sinc filter, in pure torch.

From rate ``r_in`` to ``r_out``, with ``L / M = r_out / r_in`` reduced by their gcd, output sample k sits at
input time ``k M / L`` and is a weighted sum of the input samples around it (polyphase form of
upsample-by-L, low-pass, downsample-by-M)::

    y[k] = sum_n x[n] h(k M - n L),         |k M - n L| <= H,  H = 10 max(L, M)
    h(j) = L * c sinc(c j) w(j) / sum_j' c sinc(c j') w(j'),    c = 1 / max(L, M)

``sinc(u) = sin(pi u) / (pi u)``; the cutoff ``c`` (relative to the upsampled Nyquist) is the lower of the two
Nyquist frequencies, so downsampling does not alias; ``w`` is a Kaiser window (beta 5) over the 2H + 1 taps;
the normalisation gives unit gain at DC. Samples outside the input are zeros. This is exactly
``scipy.signal.resample_poly(x, L, M)`` with its default window (tested against it), computed in chunks
of output samples so memory stays bounded; the output has ``ceil(N L / M)`` samples.
"""

from __future__ import annotations

import math

import torch

from fromzero.errors import ConfigError

KAISER_BETA = 5.0
HALF_LENGTH_PER_RATE = 10  # H = 10 * max(L, M) taps each side, as scipy's resample_poly
_CHUNK = 32768  # output samples computed at a time


def _filter(up: int, down: int, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
    """The 2H + 1 taps h(-H .. H) (float64 -> dtype) and H."""
    rate = max(up, down)
    half = HALF_LENGTH_PER_RATE * rate
    j = torch.arange(-half, half + 1, dtype=torch.float64)
    cutoff = 1.0 / rate
    ideal = cutoff * torch.sinc(cutoff * j)
    window = torch.kaiser_window(2 * half + 1, periodic=False, beta=KAISER_BETA, dtype=torch.float64)
    taps = ideal * window
    return (taps / taps.sum() * up).to(dtype), half


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample ``waveform`` (..., N) from ``orig_rate`` to ``new_rate`` Hz -> (..., ceil(N * new / orig))."""
    if orig_rate <= 0 or new_rate <= 0:
        raise ConfigError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
    g = math.gcd(orig_rate, new_rate)
    up, down = new_rate // g, orig_rate // g
    dtype = waveform.dtype if waveform.is_floating_point() else torch.float32
    x = waveform.to(dtype)
    if up == down:
        return x.clone()
    n_in = x.shape[-1]
    n_out = -(-n_in * up // down)
    taps, half = _filter(up, down, dtype)
    taps = taps.to(x.device)
    flat = x.reshape(-1, n_in)  # (B, N)
    width = (2 * half) // up + 2  # input samples any output can touch
    chunks = []
    for start in range(0, n_out, _CHUNK):
        k = torch.arange(start, min(start + _CHUNK, n_out), device=x.device)  # (K,)
        first = torch.div(k * down - half + up - 1, up, rounding_mode="floor")  # ceil((kM - H) / L)
        n = first[:, None] + torch.arange(width, device=x.device)[None, :]  # (K, W) input indices
        offset = k[:, None] * down - n * up  # (K, W) tap positions kM - nL
        valid = (offset.abs() <= half) & (n >= 0) & (n < n_in)
        weights = torch.where(valid, taps[(offset + half).clamp(0, 2 * half)], torch.zeros((), dtype=dtype))
        gathered = flat[:, n.clamp(0, max(n_in - 1, 0))]  # (B, K, W)
        chunks.append((gathered * weights).sum(-1))
    out = torch.cat(chunks, dim=-1) if chunks else flat.new_zeros(flat.shape[0], 0)
    return out.reshape(*x.shape[:-1], n_out)
