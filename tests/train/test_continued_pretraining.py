"""Continued pretraining: ``init: RUN_DIR`` starts from a run's weights, tokenizer, model and objective."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_model

from fromzero.cli import main
from fromzero.config import dump_yaml, load_yaml
from fromzero.data.shards import load_shards
from fromzero.errors import ConfigError, DataError
from fromzero.eval.perplexity import perplexity
from fromzero.eval.pretraining import evaluate_pretraining
from fromzero.models import build_model
from fromzero.pretrain.runner import pretrain
from fromzero.runs import load_run

STEPS = ["--train.threads=1", "--train.log_every=5", "--train.eval_every=0", "--train.eval_batches=2",
         "--train.ckpt_every=10", "--train.keep_last=0", "--optim.warmup_steps=0", "--sample.prompts=[]"]


@pytest.fixture(scope="module")
def domain_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'domain' unlike the novel: a few repetitive sentences, easy to learn in a few steps."""
    lines = ["the ship sails east at dawn.", "the crew sings as the ship sails.", "at dawn the sea is calm."]
    path = tmp_path_factory.mktemp("domain") / "domain.txt"
    path.write_text(" ".join(lines[i % 3] for i in range(600)), encoding="utf-8")
    return path


def _continue(base: Path, out: Path, domain: Path, *extra: str, steps: int = 20) -> Path:
    pretrain(None, [f"--init={base}", f"--data.inputs=[{domain}]", f"--train.max_steps={steps}",
                    "--train.batch_size=8", *STEPS, *extra], out=out, progress=False)
    return out


def test_starts_from_the_base_weights_and_keeps_its_tokenizer_and_model(tiny_run: Path, domain_text: Path,
                                                                        tmp_path: Path) -> None:
    out = _continue(tiny_run, tmp_path / "cpt", domain_text, "--optim.lr=1e-12", "--optim.weight_decay=0",
                    steps=1)
    base, cpt = load_file(tiny_run / "model.safetensors"), load_file(out / "model.safetensors")
    assert base.keys() == cpt.keys()
    for name in base:  # one step at lr 1e-12: still the base model, not a fresh initialisation
        torch.testing.assert_close(cpt[name], base[name], rtol=0, atol=1e-6)
    fresh = build_model(load_run(tiny_run, with_weights=False).model_config).state_dict()
    assert any(not torch.allclose(fresh[n], base[n]) for n in base if n in fresh)
    assert (out / "tokenizer.json").read_text() == (tiny_run / "tokenizer.json").read_text()
    saved, original = load_yaml(out / "config.yaml"), load_yaml(tiny_run / "config.yaml")
    assert saved["model"] == original["model"] and saved["objective"] == original["objective"]
    assert saved["init"] == str(tiny_run)


def test_lowers_the_loss_on_the_new_domain(tiny_run: Path, domain_text: Path, tmp_path: Path) -> None:
    out = _continue(tiny_run, tmp_path / "cpt", domain_text, "--optim.lr=3e-3")
    _, domain_val, _ = load_shards(out / "data")  # held-out domain text, encoded with the base tokenizer
    before = perplexity(load_run(tiny_run), domain_val, batch_size=4, progress=False)["loss"]
    after = perplexity(load_run(out), domain_val, batch_size=4, progress=False)["loss"]
    assert after < 0.9 * before, (before, after)  # 20 steps: 2.88 -> 2.44 nats/char when written


def test_a_bert_run_continues_masked_lm_with_its_settings(tiny_bert_run: Path, domain_text: Path,
                                                          tmp_path: Path) -> None:
    out = _continue(tiny_bert_run, tmp_path / "cpt", domain_text, "--optim.lr=1e-3", "--train.seq_len=32",
                    "--objective.mask_prob=0.2", steps=6)
    objective = load_yaml(out / "config.yaml")["objective"]
    assert objective["name"] == "masked_lm" and objective["nsp"] is False  # the base's setting, kept
    assert objective["mask_prob"] == 0.2  # a setting the recipe overrides
    # the base scored on the continued run's held-out domain text: same tokenizer, so the same batches
    base_scores = evaluate_pretraining(load_run(tiny_bert_run), n_batches=2, batch_size=4, progress=False,
                                       shards=out / "data")
    own_scores = evaluate_pretraining(load_run(tiny_bert_run), n_batches=2, batch_size=4, progress=False)
    assert base_scores["loss"] != own_scores["loss"]  # other text was scored
    assert main(["eval", str(tiny_bert_run), "--shards", str(out / "data"), "--batches", "1",
                 "--batch-size", "2"]) == 0


def test_resume_continues_a_continued_run(tiny_run: Path, domain_text: Path, tmp_path: Path) -> None:
    out = _continue(tiny_run, tmp_path / "cpt", domain_text, steps=10)
    result = pretrain(None, [f"--init={tiny_run}", f"--data.inputs=[{domain_text}]", "--train.max_steps=20",
                             "--train.batch_size=8", *STEPS], out=out, resume=True, progress=False)
    assert result.train.step == 20 and result.init == str(tiny_run)


@pytest.mark.parametrize(("override", "message"), [
    ("--model.n_layer=3", "model.n_layer: a continued run keeps the model"),
    ("--model.name=gpt-char-small", "model.name: a continued run keeps the model"),
    ("--data.tokenizer.kind=bpe", "data.tokenizer: a continued run encodes its text with"),
])
def test_changing_the_model_or_tokenizer_is_refused(tiny_run: Path, domain_text: Path, tmp_path: Path,
                                                   override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _continue(tiny_run, tmp_path / "cpt", domain_text, override, steps=1)
    assert not (tmp_path / "cpt").exists()


def test_init_must_be_a_run_directory(domain_text: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="init: .* is not a run directory"):
        _continue(tmp_path / "nowhere", tmp_path / "cpt", domain_text, steps=1)


def test_a_headless_encoder_cannot_continue_masked_lm(tiny_bert_run: Path, domain_text: Path,
                                                      tmp_path: Path) -> None:
    headless = tmp_path / "headless"
    shutil.copytree(tiny_bert_run, headless, ignore=shutil.ignore_patterns("checkpoints", "data", "tensorboard"))
    config = load_yaml(headless / "config.yaml")
    config["model"].update(mlm_head=False, nsp_head=False)
    (headless / "config.yaml").write_text(dump_yaml(config), encoding="utf-8")
    save_model(build_model(load_run(headless, with_weights=False).model_config), str(headless / "model.safetensors"))
    with pytest.raises(ConfigError, match="no masked-LM head"):
        _continue(headless, tmp_path / "cpt", domain_text, steps=1)


def test_shards_from_another_tokenizer_are_refused(tiny_run: Path, tiny_bert_run: Path) -> None:
    with pytest.raises(DataError, match="another tokenizer"):
        evaluate_pretraining(load_run(tiny_bert_run), n_batches=1, batch_size=2, progress=False,
                             shards=tiny_run / "data")


def test_recipe_file_with_init(tiny_run: Path, domain_text: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "cpt.yaml"
    recipe.write_text(yaml.safe_dump({"init": str(tiny_run), "data": {"inputs": [str(domain_text)]},
                                      "train": {"max_steps": 2, "batch_size": 4, "threads": 1, "eval_every": 0},
                                      "sample": {"prompts": []}}), encoding="utf-8")
    assert main(["pretrain", str(recipe), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    run = load_run(tmp_path / "run")  # an ordinary run directory: `fromzero finetune` can start from it
    assert run.tokenizer.hf.get_vocab() == load_run(tiny_run).tokenizer.hf.get_vocab()
