"""The `fromzero` command end to end on a tiny run: errors, generate, eval, info, prepare."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.errors import TrainingDivergedError
from fromzero.runs import load_run


def _recipe(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "overrides", "expected"),
    [
        ("train:\n  max_step: 10\n", [], "train.max_step: unknown key; did you mean 'train.max_steps'?"),
        ("train:\n  max_steps: ten\n", [], "train.max_steps: expected int, got 'ten'"),
        ("model:\n  name: gpt-char-small\n  n_embd: 100\n  n_head: 3\n", [],
         "model.n_embd: 100 is not divisible by n_head=3"),
        ("model:\n  name: gpt-char-smal\n", [], "unknown model 'gpt-char-smal'; did you mean 'gpt-char-small'?"),
        ("model:\n  name: gpt\n  n_layr: 2\n", [], "model.n_layr: unknown key; did you mean 'model.n_layer'?"),
        ("optim:\n  name: adamw\n", ["--optim.schedule=cosin"], "optim.schedule: 'cosin' is not one of"),
        ("data:\n  val_fraction: 1.5\n", [], "data.val_fraction: must be in [0, 1)"),
        ("train: [1, 2\n", [], "recipe.yaml:2: invalid YAML"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture, body: str,
                                         overrides: list[str], expected: str) -> None:
    recipe = _recipe(tmp_path, body)
    code = main(["pretrain", str(recipe), "--out", str(tmp_path / "run"), *overrides])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert "recipe.yaml" in err or "<overrides>" in err or "command line" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert not (tmp_path / "run").exists()  # fails before any work starts


def test_existing_run_is_not_overwritten(tiny_run: Path, capsys: pytest.CaptureFixture) -> None:
    before = (tiny_run / "metrics.jsonl").read_bytes()
    assert main(["pretrain", "--out", str(tiny_run), "--train.max_steps=5"]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert (tiny_run / "metrics.jsonl").read_bytes() == before


def test_run_directory_contents(tiny_run: Path) -> None:
    for name in ("config.yaml", "tokenizer.json", "model.safetensors", "metrics.jsonl", "summary.json",
                 "plots/loss.png"):
        assert (tiny_run / name).is_file(), name
    assert list((tiny_run / "tensorboard").glob("events.out.tfevents.*"))
    assert (tiny_run / "checkpoints" / "step_000030" / "state.json").is_file()
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["val_loss"] < summary["unigram_entropy"] + 0.5


def test_generate_streams_and_respects_seed(tiny_run: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["generate", str(tiny_run), "--prompt", "Eliza", "--max-tokens", "15", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("Eliza") and len(first) > len("Eliza")
    assert main(["generate", str(tiny_run), "--prompt", "a", "--prompt", "The", "--greedy",
                 "--max-tokens", "5"]) == 0
    assert capsys.readouterr().out.count("---") == 4


def test_eval_matches_manual_loss(tiny_run: Path, small_corpus: Path, capsys: pytest.CaptureFixture) -> None:
    import torch
    import torch.nn.functional as F

    held_out = small_corpus.parent / "held_out.txt"
    held_out.write_text(small_corpus.read_text()[:3000], encoding="utf-8")
    assert main(["eval", str(tiny_run), "--data", str(held_out), "--seq-len", "32"]) == 0
    assert "perplexity" in capsys.readouterr().out
    result = json.loads((tiny_run / "eval.json").read_text())[str(held_out)]

    run = load_run(tiny_run)  # reference: score each 32-token window directly
    ids = torch.tensor(run.tokenizer.encode(held_out.read_text()))
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, 32):
            x = ids[start:start + 33]
            logits = run.model(x[:-1].unsqueeze(0))[0]
            total += float(F.cross_entropy(logits, x[1:], reduction="sum"))
            n += len(x) - 1
    assert result["tokens"] == n
    assert math.isclose(result["loss"], total / n, rel_tol=1e-5)
    assert math.isclose(result["ppl"], math.exp(total / n), rel_tol=1e-5)


def test_info_reports_parameters_and_flops(tiny_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    run = load_run(tiny_run)
    n_params = sum(p.numel() for p in run.model.parameters())  # tied weights are listed once
    assert f"{n_params:,} total" in out
    assert "FLOPs per token" in out and "training memory" in out


def test_info_on_recipe_with_overrides(capsys: pytest.CaptureFixture) -> None:
    recipe = Path(__file__).parents[2] / "recipes" / "quickstart.yaml"
    assert main(["info", str(recipe), "--model.n_layer=2"]) == 0
    assert '"n_layer": 2' in capsys.readouterr().out


def test_prepare_command(tmp_path: Path, small_corpus: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["prepare", str(small_corpus), "--out", str(tmp_path / "shards"), "--tokenizer", "bpe",
                 "--vocab-size", "300"]) == 0
    assert "train" in capsys.readouterr().out
    assert (tmp_path / "shards" / "train-00000.bin").stat().st_size > 0
    assert (tmp_path / "shards" / "manifest.json").is_file()
    assert main(["prepare", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.txt" in capsys.readouterr().err


def test_missing_run_dir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["generate", str(tmp_path / "nope"), "--prompt", "x"]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_run_killed_before_first_checkpoint_can_resume(tmp_path: Path, small_corpus: Path,
                                                       tiny_overrides: list[str]) -> None:
    from fromzero.pretrain.runner import pretrain

    out = tmp_path / "run"
    args = [*tiny_overrides, f"--data.inputs=[{small_corpus}]", "--train.max_steps=6"]
    with pytest.raises(TrainingDivergedError, match="No checkpoint was written yet"):
        pretrain(None, [*args, "--optim.lr=1e30", "--optim.warmup_steps=0"], out=out, progress=False)
    assert (out / "config.yaml").exists() and not list((out / "checkpoints").glob("step_*"))
    result = pretrain(None, args, out=out, resume=True, progress=False)  # a sane lr this time
    assert result.train.step == 6 and math.isfinite(result.train.train_loss)


def test_serve_rejects_a_bad_thread_count_before_starting(tiny_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", str(tiny_run), "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: argument --threads: must be >= 1, got 0 (see `fromzero serve --help`)"
