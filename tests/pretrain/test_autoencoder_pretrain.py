"""The denoising autoencoder through `fromzero pretrain`: on a toy corpus it learns, within seconds, to rebuild
windows far better than copying the corrupted input, through z (a z from another row does much worse); the run
directory loads, gives sentence vectors and is scored by `fromzero eval`; bad settings exit 2 in one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml

from fromzero.cli import main
from fromzero.data.loader import IGNORE_INDEX
from fromzero.pretrain.runner import pretrain
from fromzero.pretrain.tasks import get_task
from fromzero.runs import load_run
from fromzero.train.loggers import read_metrics

WORDS = ["cat", "dog", "bird", "fish", "frog", "owl"]


def write_recipe(tmp: Path, **changes) -> Path:
    corpus = tmp / "toy.txt"
    rng = random.Random(0)
    corpus.write_text(" ".join(rng.choice(WORDS) for _ in range(4000)) + "\n", encoding="utf-8")
    recipe = {"seed": 0,
              "model": {"name": "autoencoder", "n_embd": 16, "hidden": 64, "d_z": 32, "dropout": 0.0,
                        "max_positions": 12},
              "objective": {"name": "denoising_autoencoder", "min_length": 6},
              "data": {"inputs": [str(corpus)], "tokenizer": {"kind": "char"}, "val_fraction": 0.1},
              "train": {"max_steps": 200, "batch_size": 32, "log_every": 50, "eval_every": 50, "eval_batches": 4,
                        "ckpt_every": 0, "threads": 1},
              "optim": {"lr": 1e-2, "warmup_steps": 10, "weight_decay": 0.0},
              "sample": {"prompts": ["cat dog owl"], "generation": {"max_new_tokens": 20, "temperature": 0}}}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        recipe[section][key] = value
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    scored = labels != IGNORE_INDEX
    return float(((logits.argmax(-1) == labels) & scored).sum() / scored.sum())


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dae")
    return pretrain(write_recipe(tmp), out=tmp / "run", progress=False).run_dir


def test_reconstruction_beats_the_copy_baseline_through_z(toy_run: Path) -> None:
    evals = [r for r in read_metrics(toy_run / "metrics.jsonl") if "val_token_accuracy" in r]
    first, last = evals[0], evals[-1]
    assert last["val_token_accuracy"] > first["val_token_accuracy"]
    assert last["val_token_accuracy"] > last["val_copy_accuracy"] + 0.35, last  # copying x~ scores ~0.3
    run = load_run(toy_run)
    task = get_task("denoising_autoencoder")
    cfg = task.config_cls(**{k: v for k, v in run.config["objective"].items() if k != "name"})
    from fromzero.data.shards import load_shards

    train, val, _ = load_shards(toy_run / "data")
    batch = task.batches(train, val, run.tokenizer, 12, 256, 7, cfg)[1].batch(0)
    with torch.no_grad():
        z = run.model.encode(batch["input_ids"], batch["attention_mask"])  # (B, 1, d_z)
        own = accuracy(run.model.decode(batch["decoder_input_ids"], z), batch["labels"])
        other = accuracy(run.model.decode(batch["decoder_input_ids"], z.roll(1, dims=0)), batch["labels"])
    assert own > other + 0.15, (own, other)  # the decoder reads the input from z, not only the language


def test_run_gives_sentence_vectors_samples_and_eval(toy_run: Path, capsys: pytest.CaptureFixture) -> None:
    run = load_run(toy_run)
    z = run.model.embed_token_lists([run.tokenizer.encode(t) for t in ("cat dog", "owl fish frog")])
    assert z.shape == (2, 32) and torch.isfinite(z).all()
    assert json.loads((toy_run / "summary.json").read_text())["objective"] == "denoising_autoencoder"
    assert (toy_run / "report.html").is_file()
    assert main(["eval", str(toy_run), "--batches", "2", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "copy_accuracy" in out and "token_accuracy" in out


@pytest.mark.parametrize(("changes", "message"), [
    ({"objective__noise": ["drop", "blur"]}, "objective.noise: unknown noise 'blur'"),
    ({"model__d_z": 0}, "model.d_z: must be positive")])
def test_bad_settings_exit_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, changes: dict,
                                         message: str) -> None:
    recipe = write_recipe(tmp_path, **changes)
    assert main(["pretrain", str(recipe), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
