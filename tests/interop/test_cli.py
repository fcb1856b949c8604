"""`fromzero import-hf` / `fromzero export-hf` end to end: an imported tiny GPT-2 generates what transformers
generates, the run directory is a normal one, and the export loads back in transformers."""

from __future__ import annotations

import json

import pytest
import torch

from fromzero.cli import main
from fromzero.interop import save_hf_tokenizer
from fromzero.pretrain.recipe import load_recipe
from fromzero.runs import load_run

transformers = pytest.importorskip("transformers", reason="transformers is not installed (dev extra)")
PROMPT = "It is a truth"


@pytest.fixture()
def gpt2_dir(hf_models, tokenizers, tmp_path, saved):
    hf = hf_models.gpt2()
    folder = saved(hf, tmp_path / "hf-gpt2")
    save_hf_tokenizer(tokenizers["bpe"], folder, model_max_length=64)
    return hf, folder


def test_import_generate_export(gpt2_dir, tokenizers, tmp_path, capsys, batch):
    hf, folder = gpt2_dir
    run = tmp_path / "runs" / "imported"
    assert main(["import-hf", str(folder), str(run)]) == 0
    out = capsys.readouterr().out
    assert "imported GPT2LMHeadModel (gpt," in out and "tokenizer from tokenizer.json" in out
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "model.safetensors", "source.json",
                                                     "tokenizer.json"]
    recipe = load_recipe(run / "config.yaml")  # a complete, valid recipe
    assert recipe.model["name"] == "gpt" and recipe.data.tokenizer.kind == "bpe"
    source = json.loads((run / "source.json").read_text())
    assert source["architecture"] == "GPT2LMHeadModel" and source["hf_config"]["n_embd"] == 32

    tok = tokenizers["bpe"]
    prompt_ids = tok.encode(PROMPT)
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt_ids]), max_new_tokens=8, do_sample=False, eos_token_id=tok.eos_id,
                          pad_token_id=tok.eos_id)[0, len(prompt_ids):].tolist()
    ref = ref[: ref.index(tok.eos_id)] if tok.eos_id in ref else ref
    assert main(["generate", str(run), "--prompt", PROMPT, "--greedy", "--max-tokens", "8", "--no-stream"]) == 0
    printed = capsys.readouterr().out
    assert printed == f"--- {PROMPT!r} ---\n{PROMPT}{tok.decode(ref)}\n" and ref

    assert main(["info", str(run)]) == 0
    assert "parameters:" in capsys.readouterr().out

    out_dir = tmp_path / "exported"
    assert main(["export-hf", str(run), str(out_dir)]) == 0
    assert "GPT2LMHeadModel" in capsys.readouterr().out
    back = transformers.AutoModelForCausalLM.from_pretrained(out_dir).eval()
    ids, mask = batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits
        assert torch.equal(back(input_ids=ids, attention_mask=mask).logits, ref)
    theirs = transformers.AutoTokenizer.from_pretrained(out_dir)
    assert theirs(PROMPT, add_special_tokens=False)["input_ids"] == prompt_ids

    capsys.readouterr()  # transformers' progress bars
    assert main(["export-hf", str(run), str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty" in err and "--force" in err
    assert main(["export-hf", str(run), str(out_dir), "--force", "--dtype", "float16"]) == 0
    assert json.loads((out_dir / "config.json").read_text())["torch_dtype"] == "float16"


def test_import_into_a_non_empty_run_dir_needs_force(gpt2_dir, tmp_path, capsys):
    _, folder = gpt2_dir
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("keep")
    assert main(["import-hf", str(folder), str(run)]) == 2
    assert "not empty" in capsys.readouterr().err and (run / "notes.txt").exists()
    assert main(["import-hf", str(folder), str(run), "--force"]) == 0
    assert not (run / "notes.txt").exists() and (run / "model.safetensors").is_file()


def test_a_head_checkpoint_imports_its_encoder(hf_models, tokenizers, tmp_path, saved, capsys, batch):
    hf = hf_models.bert("BertForSequenceClassification", num_labels=3)
    folder = saved(hf, tmp_path / "hf-cls")
    save_hf_tokenizer(tokenizers["wordpiece"], folder, model_max_length=64)
    assert main(["import-hf", str(folder), str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "note: the BertForSequenceClassification task head (classifier.weight, classifier.bias)" in out
    run = load_run(tmp_path / "run")
    ids, mask = batch()
    with torch.no_grad():
        ref = hf.bert(ids, attention_mask=mask).pooler_output
        assert (run.model.pool(run.model(ids, attention_mask=mask)) - ref).abs().max() < 1e-4


def test_hub_id_while_offline_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["import-hf", "gpt2", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'gpt2' is not a local folder") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("family", "kind"), [("llama", "bpe"), ("bert", "wordpiece"), ("t5", "unigram")])
def test_every_family_imports_to_a_valid_run_directory(family, kind, hf_models, tokenizers, tmp_path, saved,
                                                       capsys, batch):
    hf = hf_models.t5(gated=True) if family == "t5" else getattr(hf_models, family)()
    folder = saved(hf, tmp_path / "hf")
    save_hf_tokenizer(tokenizers[kind], folder, model_max_length=64)
    assert main(["import-hf", str(folder), str(tmp_path / "run")]) == 0
    recipe = load_recipe(tmp_path / "run" / "config.yaml")
    assert recipe.task_name() == {"llama": "causal_lm", "bert": "masked_lm", "t5": "span_corruption"}[family]
    run = load_run(tmp_path / "run")
    ids, mask = batch()
    with torch.no_grad():
        if family == "t5":
            got, ref = run.model(ids, decoder_input_ids=ids), hf(input_ids=ids, decoder_input_ids=ids).logits
        elif family == "bert":
            got, ref = run.model.mlm_logits(run.model(ids)), hf(ids).prediction_logits
        else:
            got, ref = run.model(ids), hf(input_ids=ids).logits
    assert (got - ref).abs().max() < 1e-4
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == [type(hf).__name__]


def test_fill_mask_on_a_headless_import_is_one_clear_line(hf_models, tokenizers, tmp_path, saved, capsys):
    folder = saved(hf_models.bert("BertModel"), tmp_path / "hf-base")
    save_hf_tokenizer(tokenizers["wordpiece"], folder, model_max_length=64)
    assert main(["import-hf", str(folder), str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["fill-mask", str(tmp_path / "run"), "a [MASK] b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: fill-mask: ") and "has no masked-LM head" in err and err.count("\n") == 1
