"""Shared fixtures: a small slice of the bundled corpus and a tiny trained run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from fromzero.data.corpus import resolve_input

TINY_OVERRIDES = [
    "--model.name=gpt-char-tiny", "--model.block_size=32", "--train.batch_size=8", "--train.threads=1",
    "--train.log_every=5", "--train.eval_every=10", "--train.eval_batches=2", "--train.ckpt_every=10",
    "--train.keep_last=0", "--optim.warmup_steps=5", "--optim.lr=3e-3", "--sample.generation.max_new_tokens=20",
    # `auto` would time fp32 against bf16 per run: on a CPU with native bf16 (AMX) two runs of a tiny model
    # can land on different sides of the tie, and tests compare runs (tests/train/test_precision_resume.py
    # covers auto itself)
    "--train.precision=fp32",
]


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    """Recipe overrides that make any run tiny and fast (single-threaded, so deterministic)."""
    return list(TINY_OVERRIDES)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60k characters of Pride and Prejudice."""
    text = resolve_input("bundled:pride_and_prejudice").read_text(encoding="utf-8")[:60_000]
    path = tmp_path_factory.mktemp("corpus") / "pp_small.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Path:
    """A tiny GPT trained for 30 steps (seconds) into a run directory."""
    from fromzero.pretrain.runner import pretrain

    out = tmp_path_factory.mktemp("runs") / "tiny"
    pretrain(None, [*TINY_OVERRIDES, f"--data.inputs=[{small_corpus}]", "--train.max_steps=30"],
             out=out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_bert_run(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Path:
    """A tiny BERT pretrained for a few masked-LM steps (WordPiece tokenizer with [CLS]/[SEP]/[PAD])."""
    from fromzero.pretrain.runner import pretrain

    out = tmp_path_factory.mktemp("base") / "bert"
    pretrain(None, ["--model.name=bert-tiny", "--model.n_embd=32", "--model.n_head=2", "--model.max_positions=64",
                    "--model.dropout=0.0", "--objective.name=masked_lm", "--objective.nsp=false",
                    "--data.tokenizer.kind=wordpiece", "--data.tokenizer.vocab_size=300",
                    "--data.tokenizer.lowercase=true", f"--data.inputs=[{small_corpus}]", "--train.max_steps=4",
                    "--train.batch_size=4", "--train.seq_len=32", "--train.threads=1", "--train.eval_every=0",
                    "--train.eval_batches=1", "--train.log_every=2", "--sample.prompts=[]"], out=out, progress=False)
    return out


TINY_IMAGE_RECIPE = {"seed": 0, "task": "image_classification", "data": {"source": "digits"},
                     "model": {"name": "cnn", "channels": [4, 8], "hidden": 16},
                     "train": {"max_steps": 4, "batch_size": 16, "threads": 1, "precision": "fp32", "log_every": 2,
                               "eval_every": 4, "eval_batches": 1, "ckpt_every": 0},
                     "optim": {"lr": 3e-3, "warmup_steps": 1}}


@pytest.fixture(scope="session")
def tiny_image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CNN trained for 4 steps on scikit-learn digits (grayscale 8x8) into an image run directory."""
    import yaml

    from fromzero.vision.runner import train_vision

    folder = tmp_path_factory.mktemp("image-run")
    recipe = folder / "digits.yaml"
    recipe.write_text(yaml.safe_dump(TINY_IMAGE_RECIPE), encoding="utf-8")
    return train_vision(recipe, out=folder / "run", progress=False).run_dir
