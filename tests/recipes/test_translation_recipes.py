"""recipes/t5_bible_init.yaml + finetune_bible_t5.yaml and rnn_bible_init.yaml + finetune_bible_rnn.yaml run end
to end in seconds on a toy "translation" (each English word mapped to a made-up Spanish one), with the recipes'
own settings (from-scratch fine-tune, length-grouped batches, label smoothing, beam search) and only the sizes
shrunk; the reversed direction (task.reverse) trains from the same files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.pretrain.runner import pretrain
from fromzero.train.loggers import read_metrics

RECIPES = Path(__file__).parents[2] / "recipes"
LEXICON = {"the": "el", "man": "varón", "went": "fué", "to": "á", "land": "tierra", "of": "de", "his": "su",
           "wife": "mujer", "and": "y", "two": "dos", "sons": "hijos", "lived": "moró", "there": "allí"}
SHRINK = {"t5": ["--model.d_model=48", "--model.n_head=2", "--model.d_kv=24", "--model.d_ff=96", "--model.n_layer=1"],
          "rnn": ["--model.n_embd=64", "--model.hidden=64", "--model.attn_dim=64"]}


def _write_pairs(folder: Path) -> dict[str, Path]:
    rng, words = random.Random(0), sorted(LEXICON)
    paths = {}
    for split, n in (("train", 300), ("validation", 12), ("test", 12)):
        lines = []
        for _ in range(n):
            en = [rng.choice(words) for _ in range(rng.randint(2, 6))]
            lines.append(f"{' '.join(en)}\t{' '.join(LEXICON[w] for w in en)}")
        paths[split] = folder / f"{split}.tsv"
        paths[split].write_text("\n".join(lines) + "\n", encoding="utf-8")
    for side, name in ((0, "corpus_en.txt"), (1, "corpus_es.txt")):
        rows = paths["train"].read_text(encoding="utf-8").splitlines()
        (folder / name).write_text("\n".join(r.split("\t")[side] for r in rows) + "\n", encoding="utf-8")
    return paths


@pytest.mark.parametrize(("family", "reverse"), [("t5", False), ("rnn", True)])
def test_bible_translation_recipes_run_on_a_toy_slice(family: str, reverse: bool, tmp_path: Path) -> None:
    files = _write_pairs(tmp_path)
    base = tmp_path / "base"
    corpora = f"--data.inputs=[{tmp_path / 'corpus_en.txt'},{tmp_path / 'corpus_es.txt'}]"
    # byte-level BPE: on a 26-word toy corpus the unigram trainer keeps barely more than characters
    tokenizer = ["--data.tokenizer.kind=bpe", "--data.tokenizer.vocab_size=400"]
    pretrain(RECIPES / f"{family}_bible_init.yaml", [*SHRINK[family], corpora, *tokenizer, "--train.seq_len=32",
                                                      "--model.dropout=0.0"], out=base, progress=False)
    overrides = [f"--base={base}", *(f"--task.{s}={p}" for s, p in files.items()), "--train.max_steps=300",
                 "--train.batch_size=16", "--train.log_every=10", "--train.eval_every=150", "--train.eval_batches=1",
                 "--task.eval_examples=6", "--task.beam_size=2", "--optim.warmup_steps=5",
                 *([] if family == "t5" else ["--optim.lr=3e-3"]),  # T5 keeps its recipe's Adafactor at 1e-2
                 "--train.threads=1"]
    run = tmp_path / "run"
    assert main(["finetune", str(RECIPES / f"finetune_bible_{family}.yaml"), *overrides,
                 f"--task.reverse={str(reverse).lower()}", "--out", str(run), "--no-progress"]) == 0
    losses = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0] * 0.6, losses
    test = json.loads((run / "eval.json").read_text())["test"]["metrics"]
    assert test["chrf"] > 20, test  # chance (any words of the other language) scores ~10
    rows = (run / "samples_test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sources = [r.split("\t")[0] for r in rows]  # reverse: Spanish sources, English outputs
    assert all(w in (LEXICON.values() if reverse else LEXICON) for s in sources for w in s.split())
