"""Two tiny T5 translation runs (en -> es and es -> en) on a toy word-for-word mapping, trained in seconds, for
the back-translation tests. "big" and "large" both become "grande", which comes back as "big": a round trip
of a text with "large" changes it even when both runs are perfect."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

EN_ES = {"red": "rojo", "blue": "azul", "green": "verde", "cat": "gato", "dog": "perro", "fish": "pez",
         "big": "grande", "large": "grande", "small": "chico"}
EN_WORDS = sorted(EN_ES)


def toy_sentences(n: int, seed: int, k: int = 3) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(EN_WORDS, k)) for _ in range(n)]


def _pairs(path: Path, n: int, seed: int) -> Path:
    lines = []
    for text in toy_sentences(n, seed):
        target = " ".join(EN_ES[w] for w in text.split())
        # es -> en: "grande" reads back as "big", so the reversed pairs never teach "large"
        lines.append(f"{text.replace('large', 'big')}\t{target}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_t5_base(folder: Path, words: list[str], vocab_size: int) -> Path:
    """A tiny T5 pretrained for 4 span-corruption steps on random sentences of ``words`` (BPE, so words are few
    tokens): the base run seq2seq fine-tuning tests start from."""
    from fromzero.pretrain.runner import pretrain

    rng = random.Random(0)
    corpus = folder / "words.txt"
    corpus.write_text("\n".join(" ".join(rng.choices(words, k=12)) for _ in range(300)) + "\n", encoding="utf-8")
    pretrain(None, ["--model.name=t5-tiny", "--model.d_model=32", "--model.n_head=2", "--model.d_kv=16",
                    "--model.d_ff=64", "--model.dropout=0.0", "--model.max_positions=64",
                    "--data.tokenizer.kind=bpe", f"--data.tokenizer.vocab_size={vocab_size}",
                    f"--data.inputs=[{corpus}]", "--train.max_steps=4", "--train.batch_size=4", "--train.seq_len=32",
                    "--train.threads=1", "--train.eval_every=0", "--train.eval_batches=1", "--train.log_every=2",
                    "--sample.prompts=[]"], out=folder / "t5", progress=False)
    return folder / "t5"


def make_translation_runs(folder: Path, steps: int = 40) -> tuple[Path, Path]:
    """(en->es run, es->en run): a T5 pretrained 4 steps on both vocabularies, then fully fine-tuned each way."""
    from fromzero.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    base = tiny_t5_base(folder, EN_WORDS + sorted(set(EN_ES.values())), vocab_size=400)
    files = {s: _pairs(folder / f"{s}.tsv", n, k) for s, n, k in (("train", 64, 0), ("validation", 8, 1),
                                                                   ("test", 8, 2))}
    runs = []
    for name, reverse in (("en_es", False), ("es_en", True)):
        recipe = {"seed": 0, "base": str(base),
                  "task": {"kind": "seq2seq", "max_len": 16, "max_target_len": 12, "eval_examples": 2,
                           "reverse": reverse, **{s: str(p) for s, p in files.items()}},
                  "method": {"name": "full"}, "select_metric": "loss",
                  "train": {"max_steps": steps, "batch_size": 16, "threads": 1, "log_every": 10,
                            "eval_every": steps},
                  "optim": {"lr": 5e-3, "warmup_steps": 0}}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
        assert main(["finetune", str(path), "--out", str(folder / name), "--no-progress"]) == 0
        runs.append(folder / name)
    return runs[0], runs[1]
