"""fromzero's Word2Vec against gensim's on the same tokens: training time, nearest neighbours, analogies.

    python benchmarks/word2vec_gensim.py                 # skip-gram, 10 epochs (recipes/word2vec_pp.yaml)
    python benchmarks/word2vec_gensim.py --epochs 1 --mode cbow
    (needs the bench extra: pip install -e '.[bench]')

1. the recipe's corpus (Pride and Prejudice) is encoded once with the recipe's tokenizer (lowercase WordPiece)
   into a prepared folder; both libraries train on its training split, gensim on the same token strings
   (in 10,000-token "sentences", its longest, so its windows run on as fromzero's do);
2. fromzero: ``fromzero pretrain recipes/word2vec_pp.yaml`` on that folder, for as many steps as ``--epochs``
   passes over the kept (subsampled) tokens take; the Trainer's wall time is reported;
3. gensim: ``Word2Vec(sg, vector_size, window, negative, sample, epochs, min_count=1, workers=--threads)``;
   vocabulary building plus training is reported;
4. both sets of vectors, restricted to the same vocabulary (every non-special token of the training split),
   are scored by fromzero's own code (``eval/word_vectors.py``): the nearest neighbours of a few words, and
   3CosAdd accuracy on ``benchmarks/data/pp_analogies.txt`` (hand-written questions, all in the vocabulary).

Same settings: dim, max window, negatives, t (both keep a word with probability sqrt(t/f) + t/f, word2vec.c's
rule), epochs, and K fresh negatives per (center, context) pair. Differences that remain: gensim updates with
SGD one pair at a time (lr 0.025 -> 0.0001) and sweeps the tokens in order; fromzero draws centers at random
and takes the recipe's SGD step on the mean loss of batches of 256 centers (~1,540 pairs; lr 50 -> 0.5, about
0.033 -> 0.0003 per pair); gensim starts V in +-1/dim, fromzero (as word2vec.c) in +-0.5/dim.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fromzero.data.shards import load_shards, prepare_corpus
from fromzero.data.token_shards import token_counts
from fromzero.data.tokenizers import Tokenizer
from fromzero.data.word2vec_batches import keep_probabilities
from fromzero.eval.word_vectors import analogy_accuracy, nearest_neighbours, read_analogies
from fromzero.pretrain.recipe import load_recipe
from fromzero.pretrain.runner import pretrain
from fromzero.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "word2vec_pp.yaml"
QUESTIONS = ROOT / "benchmarks" / "data" / "pp_analogies.txt"
WORDS = ["elizabeth", "darcy", "sister", "mother", "she", "letter", "happy", "london"]
SENTENCE = 10_000  # gensim's longest sentence


def prepare(work: Path) -> tuple[Path, Tokenizer, np.ndarray, dict[str, Any]]:
    """The recipe's corpus encoded once: (folder, tokenizer, training ids, recipe settings)."""
    recipe = load_recipe(RECIPE)
    data = work / "data"
    prepare_corpus(recipe.data.inputs, data, recipe.data.tokenizer, val_fraction=recipe.data.val_fraction,
                   seed=recipe.seed, progress=False)
    train, _, _ = load_shards(data)
    objective = {k: v for k, v in recipe.objective.items() if k != "name"}
    return data, Tokenizer.load(data / "tokenizer.json"), np.asarray(train[:len(train)], dtype=np.int64), {
        "batch_size": recipe.train.batch_size, **objective}  # a small corpus: one array


def vocabulary(tok: Tokenizer, train: np.ndarray) -> list[int]:
    """Ids seen in the training split, special tokens left out: the rows both libraries are scored on."""
    specials = {tok.token_to_id(t) for t in tok.special_tokens}
    counts = token_counts(train, tok.vocab_size)
    return [i for i in range(tok.vocab_size) if counts[i] > 0 and i not in specials]


def train_fromzero(data: Path, tok: Tokenizer, train: np.ndarray, cfg: dict[str, Any], args, work: Path):
    """Steps = epochs * expected kept tokens / batch; returns (vectors (V, D), seconds, steps)."""
    specials = {tok.token_to_id(t) for t in tok.special_tokens}
    counts = token_counts(train, tok.vocab_size)
    counts[list(specials)] = 0
    kept = float((keep_probabilities(counts, cfg["subsample"]) * counts).sum())
    steps = max(1, math.ceil(args.epochs * kept / cfg["batch_size"]))
    overrides = [f"--data.prepared={data}", f"--train.max_steps={steps}", f"--train.threads={args.threads}",
                 f"--train.eval_every={steps}", f"--train.ckpt_every={steps}", f"--model.name=word2vec-{args.mode}-100",
                 f"--model.dim={args.dim}", "--sample.prompts=[]", *(f"--{o}" for o in args.set)]
    result = pretrain(RECIPE, overrides, out=work / "fromzero", progress=False)
    model = load_run(work / "fromzero").model
    return model.word_vectors().detach(), result.train.elapsed_s, steps


def train_gensim(tok: Tokenizer, train: np.ndarray, ids: list[int], cfg: dict[str, Any], args):
    """gensim on the same token strings; returns (vectors in the order of ``ids``, seconds)."""
    from gensim.models import Word2Vec

    keep = np.zeros(tok.vocab_size, dtype=bool)
    keep[ids] = True
    words = [tok.id_to_token(i) for i in train[keep[train]]]
    sentences = [words[i:i + SENTENCE] for i in range(0, len(words), SENTENCE)]
    start = time.perf_counter()
    model = Word2Vec(sentences, sg=int(args.mode == "skipgram"), vector_size=args.dim, window=cfg["window"],
                     negative=cfg["negatives"], sample=cfg["subsample"], epochs=args.epochs, min_count=1,
                     workers=args.threads, seed=1)
    seconds = time.perf_counter() - start
    return torch.from_numpy(np.stack([model.wv[tok.id_to_token(i)] for i in ids])), seconds


def compare(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data, tok, train, cfg = prepare(work)
    ids = vocabulary(tok, train)
    vocab = {tok.id_to_token(i): row for row, i in enumerate(ids)}
    fz_all, fz_s, steps = train_fromzero(data, tok, train, cfg, args, work)
    gs, gs_s = train_gensim(tok, train, ids, cfg, args)
    questions = read_analogies(QUESTIONS)
    out: dict[str, Any] = {"mode": args.mode, "epochs": args.epochs, "dim": args.dim, "threads": args.threads,
                           "vocabulary": len(ids), "train_tokens": len(train), "fromzero_steps": steps, **cfg,
                           "libraries": {}}
    for name, vectors, seconds in (("fromzero", fz_all[ids], fz_s), ("gensim", gs, gs_s)):
        acc = analogy_accuracy(vectors, vocab, questions)
        near = {w: [ids_word for ids_word, _ in nearest_neighbours(vectors, vocab[w], k=6)] for w in WORDS}
        out["libraries"][name] = {
            "train_s": round(seconds, 2), "analogy_accuracy": round(acc.accuracy, 3),
            "analogies": f"{acc.correct}/{acc.answered}", "sections": acc.sections,
            "neighbours": {w: [tok.id_to_token(ids[r]) for r in rows] for w, rows in near.items()}}
    return out


def render(result: dict[str, Any]) -> str:
    libs = result["libraries"]
    lines = [f"Word2Vec {result['mode']}, dim {result['dim']}, window {result['window']}, {result['negatives']} "
             f"negatives, t={result['subsample']}, {result['epochs']} epochs, {result['threads']} thread(s); "
             f"{result['train_tokens']} training tokens, vocabulary {result['vocabulary']}",
             "", "| | fromzero | gensim |", "|---|---|---|"]
    lines.append(f"| training time (s) | {libs['fromzero']['train_s']} | {libs['gensim']['train_s']} |")
    lines.append(f"| analogies (3CosAdd) | {libs['fromzero']['analogies']} | {libs['gensim']['analogies']} |")
    for word in WORDS:
        lines.append(f"| {word} | {', '.join(libs['fromzero']['neighbours'][word])} | "
                     f"{', '.join(libs['gensim']['neighbours'][word])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10, help="passes over the kept tokens, both libraries")
    p.add_argument("--mode", choices=["skipgram", "cbow"], default="skipgram")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="torch threads / gensim workers")
    p.add_argument("--set", action="append", default=[], metavar="section.key=value",
                   help="a recipe override for the fromzero run, e.g. optim.lr=0.02 (repeatable)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="w2v_bench_") as tmp:
        result = compare(args, Path(tmp))
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
