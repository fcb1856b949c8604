"""Stable 64-bit hashing (SplitMix64): the same numbers in every process, run and machine.

Python's ``hash`` is salted per process, so seeds, batch order, validation
buckets and samples are all derived from these instead.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """One SplitMix64 step: a stable, well-mixed 64-bit hash of ``x`` (unlike Python's ``hash``)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def batch_seed(seed: int, step: int, micro: int = 0) -> int:
    """64-bit generator seed for one micro-batch; chained so (step, micro) pairs never alias linearly."""
    h = splitmix64(seed & _MASK64)
    h = splitmix64(h ^ (step & _MASK64))
    return splitmix64(h ^ (micro & _MASK64))


def unit_uniform(seed: int, key: int) -> float:
    """A number in [0, 1) fixed by ``(seed, key)``: the top 53 bits of their mixed hash."""
    return (splitmix64(splitmix64(seed & _MASK64) ^ (key & _MASK64)) >> 11) / float(1 << 53)
