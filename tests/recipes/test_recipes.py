"""Every recipe validates; each one trains a few steps on a small slice and its loss goes down."""

from __future__ import annotations

from pathlib import Path

import pytest

from fromzero.data.corpus import resolve_input
from fromzero.finetune.recipe import is_finetune_recipe, load_finetune_recipe
from fromzero.pretrain.recipe import load_recipe
from fromzero.pretrain.runner import pretrain
from fromzero.train.loggers import read_metrics

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))
FINETUNE_RECIPES = [p for p in RECIPES if is_finetune_recipe(p)]


def test_there_are_recipes() -> None:
    assert {p.stem for p in RECIPES} >= {"quickstart", "bert_mlm", "t5_span", "bert_mlm_zh"}


def _continues(path: Path) -> bool:
    """A continued-pretraining recipe (``init:`` names the run it starts from)."""
    import yaml

    return bool((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("init"))


CONTINUED = [p for p in RECIPES if p not in FINETUNE_RECIPES and _continues(p)]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates(path: Path, request: pytest.FixtureRequest) -> None:
    if path in FINETUNE_RECIPES:  # base/task/method sections: a fine-tuning recipe
        load_finetune_recipe(path)
        return
    # a continued run's model and objective come from its init run: a tiny BERT stands in for it here
    overrides = [f"--init={request.getfixturevalue('tiny_bert_run')}"] if path in CONTINUED else []
    recipe = load_recipe(path, overrides)
    recipe.model_config(file=str(path))
    recipe.objective_config(file=str(path))


def test_there_are_finetune_recipes() -> None:
    assert {p.stem for p in FINETUNE_RECIPES} >= {"finetune_trec_full", "finetune_trec_head", "finetune_trec_lora"}


@pytest.mark.parametrize("path", FINETUNE_RECIPES, ids=lambda p: p.stem)
def test_finetune_recipe_validates(path: Path) -> None:
    """Keys, types and values check without the base run or data files (they may not exist yet)."""
    recipe = load_finetune_recipe(path)
    assert recipe.method.name in ("full", "partial", "lora") and recipe.task.train and recipe.task.validation
    if recipe.method.name == "lora":
        assert recipe.method.lora.rank == 8 and recipe.optim.lr >= 5e-4  # LoRA wants ~10x full FT's rate


def _small_copy(spec: str, tmp: Path) -> Path:
    """The first ~40k characters (or 150 JSONL documents) of a bundled corpus."""
    src = resolve_input(spec)
    out = tmp / f"small{src.suffix}"
    if src.suffix == ".jsonl":
        out.write_text("".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:150]), encoding="utf-8")
    else:
        out.write_text(src.read_text(encoding="utf-8")[:40_000], encoding="utf-8")
    return out


SMOKE = {  # recipe -> overrides that keep the model small and the run to seconds
    "quickstart": ["--model.n_layer=2", "--train.batch_size=8", "--train.seq_len=64"],
    "bert_mlm": ["--model.n_layer=2", "--model.n_embd=64", "--model.n_head=2", "--train.batch_size=8",
                 "--train.seq_len=64", "--data.tokenizer.vocab_size=500", "--model.dropout=0.0"],
    "t5_span": ["--train.batch_size=8", "--train.seq_len=64", "--data.tokenizer.vocab_size=500",
                "--model.dropout=0.0"],
    "bert_mlm_zh": ["--model.n_layer=2", "--model.n_embd=64", "--model.n_head=2", "--train.batch_size=8",
                    "--data.tokenizer.vocab_size=800", "--model.dropout=0.0"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_recipe_smoke_run_learns(name: str, tmp_path: Path) -> None:
    path = Path(__file__).parents[2] / "recipes" / f"{name}.yaml"
    corpus = _small_copy(load_recipe(path).data.inputs[0], tmp_path)
    overrides = [*SMOKE[name], f"--data.inputs=[{corpus}]", "--train.max_steps=40", "--train.log_every=5",
                 "--train.eval_every=20", "--train.eval_batches=2", "--train.ckpt_every=40", "--train.threads=1",
                 "--optim.warmup_steps=5", "--sample.generation.max_new_tokens=5"]
    result = pretrain(path, overrides, out=tmp_path / "run", progress=False)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0] - 0.3, losses
    assert result.samples and (tmp_path / "run" / "model.safetensors").is_file()
    _cli_on_run(name, tmp_path / "run")


@pytest.mark.parametrize("path", CONTINUED, ids=lambda p: p.stem)
def test_continued_recipe_smoke_run_learns(path: Path, tiny_bert_run: Path, small_corpus: Path,
                                           tmp_path: Path) -> None:
    overrides = [f"--init={tiny_bert_run}", f"--data.inputs=[{small_corpus}]", "--train.max_steps=30",
                 "--train.batch_size=8", "--train.seq_len=32", "--train.log_every=5", "--train.eval_every=0",
                 "--train.ckpt_every=30", "--optim.warmup_steps=3", "--optim.lr=2e-3"]
    pretrain(path, overrides, out=tmp_path / "run", progress=False)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0], losses


def _cli_on_run(name: str, run: Path) -> None:
    """The inference commands each family supports work on the run directory."""
    import json

    from fromzero.cli import main

    assert main(["eval", str(run), "--batches", "2", "--batch-size", "4"] if name != "quickstart"
                else ["eval", str(run)]) == 0
    result = json.loads((run / "eval.json").read_text())
    if name in ("bert_mlm", "bert_mlm_zh"):
        [metrics] = result.values()
        assert 0 <= metrics["mlm_accuracy"] <= 1 and 0 <= metrics["baseline_token_accuracy"] <= 1
        if name == "bert_mlm":
            assert "nsp_accuracy" in metrics and "baseline_nsp_accuracy" in metrics
        assert main(["fill-mask", str(run), "the [MASK] of it", "--top-k", "3"]) == 0
        assert main(["generate", str(run), "--prompt", "x"]) == 2  # an encoder cannot generate
    elif name == "t5_span":
        [metrics] = result.values()
        assert 0 <= metrics["token_accuracy"] <= 1 and "baseline_token_accuracy" in metrics
        assert main(["generate", str(run), "--prompt", "It is <extra_id_0> truth", "--greedy",
                     "--max-tokens", "5"]) == 0
