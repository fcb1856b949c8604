"""The windowed-sinc resampler against scipy.signal.resample_poly and a naive per-sample sum of the formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from fromzero.data.audio_resample import resample


@pytest.mark.parametrize(("orig", "new", "n"), [(22050, 16000, 5000), (8000, 16000, 777), (16000, 8000, 1001),
                                                (44100, 16000, 3), (16000, 22050, 40000)])
def test_equals_scipy_resample_poly(orig: int, new: int, n: int) -> None:
    x = np.random.default_rng(n).standard_normal(n)
    g = math.gcd(orig, new)
    ref = resample_poly(x, new // g, orig // g)
    out = resample(torch.from_numpy(x), orig, new)
    assert out.shape == (math.ceil(n * new / orig),) == ref.shape
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)


def test_equals_the_naive_formula_and_keeps_a_tone() -> None:
    up, down, half = 2, 3, 30  # 24 kHz -> 16 kHz
    x = np.random.default_rng(0).standard_normal(50)
    j = np.arange(-half, half + 1)
    taps = (1 / 3) * np.sinc(j / 3) * np.kaiser(2 * half + 1, 5.0)
    taps = taps / taps.sum() * up
    naive = [sum(x[n] * taps[k * down - n * up + half] for n in range(50) if abs(k * down - n * up) <= half)
             for k in range(math.ceil(50 * up / down))]
    np.testing.assert_allclose(resample(torch.from_numpy(x), 24000, 16000).numpy(), naive, atol=1e-12)
    # a 440 Hz tone stays a 440 Hz tone of the same amplitude (away from the edges)
    t_in, t_out = np.arange(22050) / 22050, np.arange(16000) / 16000
    tone = resample(torch.from_numpy(np.sin(2 * np.pi * 440 * t_in)), 22050, 16000).numpy()
    np.testing.assert_allclose(tone[500:-500], np.sin(2 * np.pi * 440 * t_out)[500:-500], atol=2e-3)


def test_batched_and_identity() -> None:
    x = torch.randn(2, 3, 441, generator=torch.Generator().manual_seed(0))
    out = resample(x, 22050, 16000)
    assert out.shape == (2, 3, 320)
    torch.testing.assert_close(out[1, 2], resample(x[1, 2], 22050, 16000))
    same = resample(x, 16000, 16000)
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()
