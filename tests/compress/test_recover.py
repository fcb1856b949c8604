"""Recovery after pruning through the real runners and Trainer: pruned weights stay exactly zero (AdamW with
weight decay, gradients clipped) while the others train, and without the gradient masks they would not;
a fine-tuned BERT classifier recovers from its own config.yaml and still evaluates; structured + recovery
reloads; incompatible recipes are one-line errors with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from fromzero.compress.prune import prunable_linears
from fromzero.compress.prune_run import prune_run
from fromzero.compress.recover import mask_preparer, register_masks, zero_masks
from fromzero.errors import ConfigError
from fromzero.pretrain.runner import pretrain
from fromzero.runs import load_run
from toy_data import make_topic_rows

WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"], "music": ["song", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "small", "today"]
# clipping always active (tiny max norm), decoupled weight decay on, a large learning rate
TRAIN = ["--train.max_steps=5", "--train.grad_clip=0.01", "--optim.weight_decay=0.5", "--optim.lr=1e-2",
         "--train.eval_every=0", "--train.ckpt_every=0", "--sample.prompts=[]"]


def _recipe_args(run: Path) -> list[str]:
    return [f"--data.prepared={run / 'data'}", *TRAIN]


def test_masked_weights_stay_exactly_zero_through_recovery(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "recovered"
    result = prune_run(tiny_run, out, sparsity=0.5, recover_recipe=tiny_run / "config.yaml",
                       overrides=_recipe_args(tiny_run), progress=False)
    assert result.recovery_steps == 5
    pruned = {n: m.weight.detach() for n, m in prunable_linears(result.model).items()}
    recovered = load_run(out).model
    for name, linear in prunable_linears(recovered).items():
        w, mask = linear.weight.detach(), pruned[name] != 0
        assert torch.equal(w[~mask], torch.zeros(int((~mask).sum())))  # exactly zero, still
        assert not torch.equal(w[mask], pruned[name][mask])  # the kept weights trained
    steps = json.loads((out / "compression.json").read_text())["steps"]
    assert [s["op"] for s in steps] == ["prune", "recover"] and steps[1]["steps"] == 5
    assert json.loads((out / "sparsity.json").read_text())["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert (out / "data" / "tokenizer.json").is_file()  # the source's held-out shards travel with the model

    # control: the same run without the gradient masks moves the pruned weights off zero
    prepare = mask_preparer(result.model, {})
    control = pretrain(tiny_run / "config.yaml", _recipe_args(tiny_run), out=tmp_path / "control", progress=False,
                       prepare_model=prepare)
    moved = load_run(control.run_dir).model
    name = "blocks.0.mlp.fc"
    assert (moved.get_submodule(name).weight.detach()[pruned[name] == 0] != 0).any()


def test_gradient_masks_zero_the_masked_gradients() -> None:
    layer = torch.nn.Module()
    layer.add_module("fc", torch.nn.Linear(4, 3))
    masks = {"fc": torch.tensor([[True, False, True, False]] * 3)}
    register_masks(layer, masks)
    layer.fc(torch.randn(5, 4)).pow(2).sum().backward()
    grad = layer.fc.weight.grad
    assert (grad[:, 1] == 0).all() and (grad[:, 3] == 0).all() and (grad[:, 0] != 0).all()
    assert set(zero_masks(torch.nn.Sequential())) == set()


def test_structured_recovery_reloads(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "neurons"
    result = prune_run(tiny_run, out, sparsity=0.3, structured="neurons", calibration=1,
                       recover_recipe=tiny_run / "config.yaml", overrides=_recipe_args(tiny_run), progress=False)
    loaded = load_run(out)
    assert loaded.model.blocks[0].mlp.proj.in_features == result.model.blocks[0].mlp.proj.in_features < 256
    steps = json.loads((out / "compression.json").read_text())["steps"]
    assert [s["op"] for s in steps] == ["structured", "recover"]


def _classifier(folder: Path, base: Path) -> Path:
    from fromzero.finetune.runner import finetune

    files = {}
    for split, n, seed in (("train", 24, 0), ("validation", 9, 1), ("test", 9, 2)):
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in make_topic_rows(n, seed, WORDS, FILLER, 3)))
    recipe = {"seed": 0, "base": str(base), "task": {"max_len": 24, **{s: str(p) for s, p in files.items()}},
              "method": {"name": "full"}, "select_metric": "f1_macro",
              "train": {"max_steps": 3, "batch_size": 8, "threads": 1, "log_every": 1, "eval_every": 3,
                        "ckpt_every": 0}, "optim": {"lr": 3e-3, "warmup_steps": 0}}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return finetune(path, out=folder / "clf", progress=False).run_dir


def test_fine_tuned_classifier_recovers_from_its_own_recipe(tiny_bert_run: Path, tmp_path: Path) -> None:
    from fromzero.finetune.evaluate import evaluate_finetuned_run

    clf = _classifier(tmp_path, tiny_bert_run)
    out = tmp_path / "clf-recovered"
    result = prune_run(clf, out, sparsity=0.5, recover_recipe=clf / "config.yaml",
                       overrides=["--train.max_steps=3", "--optim.weight_decay=0.5"], progress=False)
    recovered = load_run(out)
    assert recovered.kind == "sequence_classification"
    # the head started from the pruned classifier's head (loaded by prepare_model), then trained
    assert not torch.equal(recovered.model.head.classifier.weight, result.model.head.classifier.weight)
    for name, linear in prunable_linears(recovered.model).items():
        was_zero = result.model.get_submodule(name).weight.detach() == 0
        assert (linear.weight.detach()[was_zero] == 0).all(), name
    report = evaluate_finetuned_run(out, progress=False)
    assert "accuracy" in json.dumps(report)

    heads = prune_run(clf, tmp_path / "clf-heads", sparsity=0.5, structured="heads", calibration=1, progress=False)
    assert heads.report["parameters"] < heads.parameters_before
    assert "accuracy" in json.dumps(evaluate_finetuned_run(tmp_path / "clf-heads", progress=False))

    with pytest.raises(ConfigError, match="method.name") as err:  # LoRA would fill the zeros when merged
        prune_run(clf, tmp_path / "lora", sparsity=0.5, recover_recipe=clf / "config.yaml",
                  overrides=["--method.name=lora"], progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "lora").exists()


@pytest.mark.parametrize("overrides, key", [
    (["--model.n_layer=3"], "model.n_layer"),
    (["--data.prepared=null"], "data.prepared"),
])
def test_incompatible_pretraining_recipes_are_refused(tiny_run: Path, tmp_path: Path, overrides: list[str],
                                                      key: str) -> None:
    out = tmp_path / "out"
    args = [a for a in _recipe_args(tiny_run) if not a.startswith("--data.prepared")] + overrides
    if key != "data.prepared":
        args.append(f"--data.prepared={tiny_run / 'data'}")
    with pytest.raises(ConfigError, match=key) as err:
        prune_run(tiny_run, out, sparsity=0.5, recover_recipe=tiny_run / "config.yaml", overrides=args,
                  progress=False)
    assert "\n" not in str(err.value) and not out.exists()


def test_fine_tuning_recipe_for_a_pretrained_run_is_refused(tiny_run: Path, tiny_bert_run: Path,
                                                            tmp_path: Path) -> None:
    recipe = tmp_path / "ft.yaml"
    recipe.write_text(yaml.safe_dump({"base": str(tiny_bert_run), "task": {"train": "x.jsonl",
                                                                           "validation": "y.jsonl"}}))
    with pytest.raises(ConfigError, match="pretrained run"):
        prune_run(tiny_run, tmp_path / "o", sparsity=0.5, recover_recipe=recipe, progress=False)
    assert not (tmp_path / "o").exists()


def test_recover_through_the_command_line_with_recipe_overrides(tiny_run: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    from fromzero.cli import main

    out = tmp_path / "cli"
    recipe = ["--recover", str(tiny_run / "config.yaml"), f"--data.prepared={tiny_run / 'data'}",
              "--train.max_steps=2", "--train.eval_every=0", "--sample.prompts=[]"]
    argv = ["compress", "prune", str(tiny_run), "--sparsity", "0.4", "--no-progress", *recipe]
    assert main([*argv, "--out", str(out)]) == 0
    assert "recovered for 2 steps" in capsys.readouterr().out
    assert json.loads((out / "compression.json").read_text())["steps"][-1]["steps"] == 2
    bad = tmp_path / "bad"
    assert main([*argv, "--out", str(bad), "--model.n_embd=48"]) == 2
    err = capsys.readouterr().err
    assert "model.n_embd" in err and err.count("\n") == 1 and not bad.exists()
