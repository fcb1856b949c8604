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


def finetune_topic_run(folder, base, splits: dict[str, list[dict]], *, max_len: int, max_steps: int,
                       batch_size: int, log_every: int, eval_every: int, task: dict | None = None):
    """``base`` (a tiny pretrained run) fully fine-tuned on toy rows per split (train/validation/test JSONL
    written into ``folder``), selecting on accuracy; ``task``: extra task keys; returns the run directory."""
    import json

    import yaml

    from fromzero.finetune.runner import finetune

    files = {}
    for split, rows in splits.items():
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    recipe = folder / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "seed": 0, "base": str(base),
        "task": {"max_len": max_len, **{s: str(p) for s, p in files.items()}, **(task or {})},
        "method": {"name": "full"}, "select_metric": "accuracy",
        "train": {"max_steps": max_steps, "batch_size": batch_size, "threads": 1, "log_every": log_every,
                  "eval_every": eval_every},
        "optim": {"lr": 3e-3, "warmup_steps": 0}}), encoding="utf-8")
    return finetune(recipe, out=folder / "ft", progress=False).run_dir
