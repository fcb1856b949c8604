"""Toy labeled data shared by the fine-tuning, self-training and serving tests."""

from __future__ import annotations

import random


def make_topic_rows(n: int, seed: int, words: dict[str, list[str]], filler: list[str], n_filler: int,
                    numeric: bool = False) -> list[dict]:
    """n short texts for a toy topic-classification task: ``n_filler`` filler words plus one word of the
    row's label (labels cycle through ``words``), shuffled; ``numeric`` makes the label its index (float)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(words)[i % len(words)]
        tokens = rng.sample(filler, n_filler) + [rng.choice(words[label])]
        rng.shuffle(tokens)
        rows.append({"text": " ".join(tokens), "label": float(i % len(words)) if numeric else label})
    return rows
