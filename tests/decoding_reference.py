"""The reference every decoding test compares against: no cache, no padding, one full forward per token."""

from __future__ import annotations

import torch


def naive_greedy(model: torch.nn.Module, prompt: list[int], n: int) -> list[int]:
    """Reference decoder: full forward over the unpadded sequence, argmax, repeat."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt):]
