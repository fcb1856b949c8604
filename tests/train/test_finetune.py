"""fromzero finetune end to end on tiny BERT and GPT run directories: every method through the CLI, the run
directory loads back and `fromzero eval` reproduces eval.json, LoRA merged == base + adapter, frozen
parameters bit-identical, metric-based early stopping and best-weights selection, recipe errors name the key."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from fromzero.cli import main
from fromzero.errors import ConfigError
from fromzero.eval.task_metrics import score_outputs
from fromzero.finetune import load_adapter
from fromzero.finetune.evaluate import finetuned_task_data, load_finetuned
from fromzero.finetune.methods import build_task_model
from fromzero.finetune.predict import task_outputs
from fromzero.finetune.recipe import load_finetune_recipe
from fromzero.runs import load_run
from toy_data import make_topic_rows

WORDS = {"sport": ["ball", "goal", "team", "match"], "food": ["bread", "soup", "apple", "cheese"],
         "music": ["song", "guitar", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "small", "today"]


def _write_classification(folder: Path, rows: list[dict], seed: int) -> Path:
    path = folder / f"cls_{seed}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _write_conll(folder: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        for _ in range(rng.randint(3, 6)):
            if rng.random() < 0.3:
                lines += [f"{rng.choice(['mr', 'miss'])}\tB-PER", f"{rng.choice(['bennet', 'darcy'])}\tI-PER"]
            else:
                lines.append(f"{rng.choice(FILLER)}\tO")
        lines.append("")
    path = folder / f"ner_{seed}.conll"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_squad(folder: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    paras = []
    for i in range(n):
        name = rng.choice(["darcy", "bennet", "bingley"])
        context = f"the letter came from {name} in the morning"
        paras.append({"context": context, "qas": [{"id": f"q{seed}-{i}", "question": "who sent the letter ?",
                                                   "answers": [{"text": name, "answer_start": context.index(name)}]}]})
    path = folder / f"qa_{seed}.json"
    path.write_text(json.dumps({"data": [{"paragraphs": paras}]}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bert_run(tiny_bert_run: Path) -> Path:
    return tiny_bert_run


@pytest.fixture(scope="module")
def task_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("tasks")
    return {"sequence_classification": {s: _write_classification(folder, make_topic_rows(n, k, WORDS, FILLER, 3), k)
                                        for s, n, k in
                                        (("train", 48, 0), ("validation", 18, 1), ("test", 18, 2))},
            "token_classification": {s: _write_conll(folder, n, k) for s, n, k in
                                     (("train", 24, 0), ("validation", 8, 1), ("test", 8, 2))},
            "span_qa": {s: _write_squad(folder, n, k) for s, n, k in (("train", 16, 0), ("validation", 6, 1),
                                                                         ("test", 6, 2))}}


METHODS = {
    "full": {"name": "full"},
    "partial": {"name": "partial", "freeze": {"head_only": True}},
    "lora": {"name": "lora", "lora": {"rank": 4, "alpha": 8, "targets": ["*attn.qkv", "*attn.proj", "*mlp.fc"]}},
}
SELECT = {"sequence_classification": "f1_macro", "token_classification": "f1", "span_qa": "f1"}


def _recipe(tmp: Path, base: Path, files: dict[str, Path], method: str, kind: str = "sequence_classification",
            **extra) -> Path:
    recipe = {"seed": 0, "base": str(base),
              "task": {"kind": kind, "max_len": 24, **{s: str(p) for s, p in files.items()}},
              "method": METHODS[method], "select_metric": SELECT[kind],
              "train": {"max_steps": 8, "batch_size": 8, "threads": 1, "log_every": 2, "eval_every": 4},
              "optim": {"lr": 1e-2 if method != "full" else 3e-3, "warmup_steps": 0}, **extra}
    path = tmp / f"{kind}_{method}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _finetune_and_reeval(recipe: Path, out: Path) -> dict:
    assert main(["finetune", str(recipe), "--out", str(out), "--no-progress"]) == 0
    first = json.loads((out / "eval.json").read_text())
    (out / "eval.json").unlink()
    assert main(["eval", str(out)]) == 0
    again = json.loads((out / "eval.json").read_text())
    assert again["test"] == first["test"]  # eval from the run directory alone reproduces finetune's numbers
    return first


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("family", ["bert", "gpt"])
def test_finetune_cli_every_method(family: str, method: str, bert_run: Path, tiny_run: Path, task_files,
                                   tmp_path: Path) -> None:
    base = bert_run if family == "bert" else tiny_run
    out = tmp_path / "run"
    saved = _finetune_and_reeval(_recipe(tmp_path, base, task_files["sequence_classification"], method), out)
    metrics = saved["test"]["metrics"]
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_micro", "roc_auc_ovr"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert (out / saved["test"]["confusion_png"]).stat().st_size > 1000
    assert (out / "labels.txt").read_text().split() == ["food", "music", "sport"]
    info = json.loads((out / "finetune.json").read_text())
    assert info["method"] == method and info["best_step"] in (4, 8)
    assert info["peak_rss_mb"] > 0 and info["train_wall_s"] > 0
    assert saved["training"]["trainable_parameters"] == info["trainable_parameters"]
    assert (info["trainable_percent"] == 100.0) == (method == "full")
    # the saved weights are the best evaluation's: scoring them on validation gives the logged best metric
    run = load_finetuned(out)
    val = score_outputs(task_outputs(run.model, finetuned_task_data(run, "validation"), "validation"))
    assert val["f1_macro"] == pytest.approx(info["best_validation"]["val_f1_macro"], abs=1e-9)
    assert load_finetune_recipe(out / "config.yaml").method.name == method  # config.yaml is a valid recipe
    base_weights = load_file(str(base / "model.safetensors"))
    tuned = load_file(str(out / "model.safetensors"))
    shared = [k for k in base_weights if f"backbone.{k}" in tuned]  # a tied GPT lm_head is saved once
    assert len(shared) >= len(base_weights) - 1
    changed = {k for k in shared if not torch.equal(base_weights[k], tuned[f"backbone.{k}"])}
    if method == "partial":
        assert not changed  # frozen parameters are bit-identical after training
    elif method == "lora":
        assert changed and all(k.endswith("weight") and (".attn." in k or ".mlp.fc" in k) for k in changed)
        assert (out / "adapter.safetensors").is_file()
    else:
        assert changed


@pytest.mark.parametrize("kind", ["token_classification", "span_qa"])
def test_finetune_tagging_and_qa_on_bert(kind: str, bert_run: Path, task_files, tmp_path: Path) -> None:
    saved = _finetune_and_reeval(_recipe(tmp_path, bert_run, task_files[kind], "lora", kind), tmp_path / "run")
    keys = {"precision", "recall", "f1", "token_accuracy"} if kind == "token_classification" else {"exact_match",
                                                                                                    "f1"}
    assert keys <= set(saved["test"]["metrics"]) and "confusion_png" not in saved["test"]


def test_lora_merged_model_equals_base_plus_adapter(bert_run: Path, task_files, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["finetune", str(_recipe(tmp_path, bert_run, task_files["sequence_classification"], "lora")),
                 "--out", str(out), "--no-progress"]) == 0
    adapter = load_file(str(out / "adapter.safetensors"))
    assert adapter and all(k.endswith(("lora_a", "lora_b")) or k.startswith("head.") for k in adapter)
    merged = load_finetuned(out)
    unmerged = build_task_model(load_run(bert_run).model, merged.recipe.task, merged.info["num_labels"])
    load_adapter(unmerged, out / "adapter.safetensors")
    unmerged.eval()
    batch = finetuned_task_data(merged, "test").batches("test", 18).batch(0)
    inputs = {k: batch[k] for k in ("attention_mask", "token_type_ids")}
    with torch.no_grad():
        a, b = merged.model(batch["input_ids"], **inputs), unmerged(batch["input_ids"], **inputs)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_early_stopping_on_the_selection_metric(bert_run: Path, task_files, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, bert_run, task_files["sequence_classification"], "full")
    out = tmp_path / "run"
    # lr 1e-30 changes no float32 weight: the metric never improves after the first evaluation, so
    # patience 1 stops at the second
    assert main(["finetune", str(recipe), "--out", str(out), "--no-progress", "--optim.lr=1e-30",
                 "--train.max_steps=40", "--train.early_stop_patience=1"]) == 0
    info = json.loads((out / "finetune.json").read_text())
    assert info["stopped_early"] and info["steps"] == 8 and info["best_step"] == 4


@pytest.mark.parametrize(("override", "key"), [
    ("--base=", "base"),
    ("--select_metric=bleu", "select_metric"),
    ("--method.lora.rnk=4", "method.lora.rnk"),
    ("--method.name=partial", "method.freeze"),
    ("--task.max_len=0", "task.max_len"),
    ("--task.kind=tagging", "task.kind"),
    ("--base=/nonexistent/run", "base"),
    ("--task.test=/nonexistent/test.jsonl", "task.test"),
])
def test_recipe_errors_name_the_key(override: str, key: str, bert_run: Path, task_files, tmp_path: Path,
                                    capsys) -> None:
    recipe = _recipe(tmp_path, bert_run, task_files["sequence_classification"], "full")
    if "nonexistent" not in override:  # the recipe itself is invalid; missing paths show when it runs
        with pytest.raises(ConfigError, match=f"{recipe}: {key}"):
            load_finetune_recipe(recipe, [override])
    assert main(["finetune", str(recipe), override, "--out", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()
    assert f"{recipe}: {key}:" in capsys.readouterr().err


def test_unknown_label_in_validation_names_the_line(bert_run: Path, task_files, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "val.jsonl"
    bad.write_text('{"text": "a ball", "label": "sport"}\n{"text": "a poem", "label": "poetry"}\n')
    files = {**task_files["sequence_classification"], "validation": bad}
    assert main(["finetune", str(_recipe(tmp_path, bert_run, files, "full")), "--out", str(tmp_path / "r")]) == 2
    assert f"{bad}:2: unknown label 'poetry'" in capsys.readouterr().err


def test_eval_on_a_plain_directory_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
