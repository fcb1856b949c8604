"""Export: transformers loads what we write with no missing/unexpected weights and computes our outputs; a round
trip fromzero -> export -> transformers -> save_pretrained -> import gives identical tensors; LoRA is merged."""

from __future__ import annotations

import json

import pytest
import torch

from fromzero.errors import CheckpointError
from fromzero.finetune.lora import apply_lora, lora_modules
from fromzero.interop import export_model, load_hf_model, to_hf_checkpoint
from fromzero.models import create_model
from fromzero.models.heads import SequenceClassifier, SpanQA, TokenClassifier

transformers = pytest.importorskip("transformers", reason="transformers is not installed (dev extra)")
V = 400  # = conftest.VOCAB: the padded batches use ids below it


def perturbed(name: str, seed: int = 3, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, **kw)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))  # every tensor distinct from any init
    return model.eval()


GPT2ISH = {"vocab_size": V, "block_size": 64, "n_layer": 2, "n_head": 4, "n_embd": 32}
LLAMAISH = {**GPT2ISH, "n_kv_head": 2, "mlp": "swiglu", "norm": "rmsnorm", "pos": "rope", "bias": False,
            "tie_weights": False, "rope_theta": 500.0, "norm_eps": 1e-6}
BERTISH = {"vocab_size": V, "max_positions": 64, "n_layer": 2, "n_head": 4, "n_embd": 32, "dropout": 0.0}
T5ISH = {"vocab_size": V, "n_layer": 2, "n_decoder_layer": 3, "n_head": 4, "d_model": 32, "d_kv": 12, "d_ff": 48,
         "rel_buckets": 8, "rel_max_distance": 20, "dropout": 0.0}

MODELS = {
    "gpt2": lambda: perturbed("gpt", **GPT2ISH),
    "gpt2-untied": lambda: perturbed("gpt", **GPT2ISH, tie_weights=False),
    "llama": lambda: perturbed("gpt", **LLAMAISH),
    "llama-tied-mha": lambda: perturbed("gpt", **{**LLAMAISH, "n_kv_head": None, "tie_weights": True}),
    "bert-pretraining": lambda: perturbed("bert", **BERTISH),
    "bert-mlm": lambda: perturbed("bert", **BERTISH, pooler=False, nsp_head=False),
    "bert-encoder": lambda: perturbed("bert", **BERTISH, mlm_head=False, nsp_head=False),
    "bert-nsp": lambda: perturbed("bert", **BERTISH, mlm_head=False),
    "t5-v1.0": lambda: perturbed("t5", **T5ISH),
    "t5-v1.1": lambda: perturbed("t5", **T5ISH, ffn="gated-gelu", tie_weights=False),
    "seq-single": lambda: SequenceClassifier(perturbed("bert", **BERTISH, mlm_head=False, nsp_head=False), 3,
                                             dropout=0.0).eval(),
    "seq-multi": lambda: SequenceClassifier(perturbed("bert", **BERTISH, mlm_head=False, nsp_head=False), 4,
                                            problem="multi_label").eval(),
    "seq-regression": lambda: SequenceClassifier(perturbed("bert", **BERTISH, mlm_head=False, nsp_head=False), 1,
                                                 problem="regression").eval(),
    "token": lambda: TokenClassifier(perturbed("bert", **BERTISH, pooler=False, mlm_head=False, nsp_head=False),
                                     5).eval(),
    "qa": lambda: SpanQA(perturbed("bert", **BERTISH, pooler=False, mlm_head=False, nsp_head=False)).eval(),
}
EXPECTED_CLASS = {"gpt2": "GPT2LMHeadModel", "gpt2-untied": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
                  "llama-tied-mha": "LlamaForCausalLM", "bert-pretraining": "BertForPreTraining",
                  "bert-mlm": "BertForMaskedLM", "bert-encoder": "BertModel",
                  "bert-nsp": "BertForNextSentencePrediction",
                  "t5-v1.0": "T5ForConditionalGeneration", "t5-v1.1": "T5ForConditionalGeneration",
                  "seq-single": "BertForSequenceClassification", "seq-multi": "BertForSequenceClassification",
                  "seq-regression": "BertForSequenceClassification", "token": "BertForTokenClassification",
                  "qa": "BertForQuestionAnswering"}


def outputs(ours: torch.nn.Module, hf: torch.nn.Module, name: str, ids: torch.Tensor, mask: torch.Tensor):
    """(ours, theirs) for the same padded batch, compared on real positions."""
    real = mask.bool()
    with torch.no_grad():
        if name.startswith(("gpt", "llama")):
            return ours(ids, attention_mask=mask)[real], hf(input_ids=ids, attention_mask=mask).logits[real]
        if name.startswith("t5"):
            got = ours(ids, attention_mask=mask, decoder_input_ids=ids, decoder_attention_mask=mask)
            return got[real], hf(input_ids=ids, attention_mask=mask, decoder_input_ids=ids,
                                 decoder_attention_mask=mask).logits[real]
        if name == "bert-pretraining":
            h = ours(ids, attention_mask=mask)
            ref = hf(ids, attention_mask=mask)
            return (torch.cat([ours.mlm_logits(h)[real].flatten(), ours.nsp_logits(ours.pool(h)).flatten()]),
                    torch.cat([ref.prediction_logits[real].flatten(), ref.seq_relationship_logits.flatten()]))
        if name == "bert-mlm":
            return ours.mlm_logits(ours(ids, attention_mask=mask))[real], hf(ids, attention_mask=mask).logits[real]
        if name == "bert-encoder":
            return ours(ids, attention_mask=mask)[real], hf(ids, attention_mask=mask).last_hidden_state[real]
        if name == "bert-nsp":
            return ours.nsp_logits(ours.pool(ours(ids, attention_mask=mask))), hf(ids, attention_mask=mask).logits
        got, ref = ours(ids, attention_mask=mask), hf(ids, attention_mask=mask)
        if name == "qa":
            return got[real], torch.stack([ref.start_logits, ref.end_logits], dim=-1)[real]
        return (got[real], ref.logits[real]) if name == "token" else (got, ref.logits)


@pytest.mark.parametrize("name", list(MODELS))
def test_export_loads_in_transformers_and_round_trips_exactly(name, tmp_path, batch, no_load_warnings, tokenizers):
    ours = MODELS[name]()
    tokenizer = tokenizers["wordpiece" if name.startswith(("bert", "seq", "token", "qa")) else "bpe"]
    export = export_model(ours, tokenizer, tmp_path / "hf")
    assert export.architecture == EXPECTED_CLASS[name] and export.dropped == []
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == [export.architecture] and config["torch_dtype"] == "float32"
    auto = getattr(transformers, export.auto_class)
    hf, info = auto.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert type(hf).__name__ == export.architecture
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    no_load_warnings()
    ids, mask = batch()
    got, ref = outputs(ours, hf.eval(), name, ids, mask)
    assert (got - ref).abs().max() < 1e-4 and ref.abs().max() > 0.01

    hf.save_pretrained(tmp_path / "again")
    back = load_hf_model(tmp_path / "again")
    assert type(back.model) is type(ours)
    theirs, mine = back.model.state_dict(), ours.state_dict()
    assert theirs.keys() == mine.keys()
    for key in mine:
        assert torch.equal(theirs[key], mine[key]), key


def test_untied_t5_stays_untied_and_unscaled_in_transformers(tmp_path):
    ours = MODELS["t5-v1.1"]()
    export_model(ours, None, tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["tie_word_embeddings"] is False
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "hf")
    assert hf.lm_head.weight.data_ptr() != hf.shared.weight.data_ptr()
    assert torch.equal(hf.lm_head.weight, ours.lm_head.weight) and not hf.config.scale_decoder_outputs


def test_lora_is_merged_on_export(tmp_path, batch):
    ours = MODELS["llama"]()
    apply_lora(ours, ["*attn.qkv", "*mlp.up"], rank=4, alpha=8.0)
    with torch.no_grad():
        for layer in lora_modules(ours).values():
            layer.lora_b.normal_(std=0.5)  # a trained adapter: the update is far from zero
    ids, mask = batch()
    with torch.no_grad():
        adapted = ours(ids, attention_mask=mask)
    export = export_model(ours, None, tmp_path / "hf")
    assert lora_modules(ours) and not any("lora" in k for k in export.state)  # the model passed in keeps its adapters
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits
        base = ours.__class__(ours.config).eval()
    real = mask.bool()
    assert (adapted[real] - ref[real]).abs().max() < 1e-4
    assert (base(ids)[real] - ref[real]).abs().max() > 1e-2  # the adapter mattered


def test_lora_on_a_classifier_head_model(tmp_path, batch):
    ours = MODELS["seq-single"]()
    apply_lora(ours, ["*attn.qkv"], rank=2)
    with torch.no_grad():
        for layer in lora_modules(ours).values():
            layer.lora_b.normal_(std=0.5)
    export_model(ours, None, tmp_path / "hf", labels=["neg", "neu", "pos"])
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    ids, mask = batch()
    with torch.no_grad():
        assert (ours(ids, attention_mask=mask) - hf(ids, attention_mask=mask).logits).abs().max() < 1e-4


def test_parts_the_hf_class_lacks_are_reported_not_invented():
    ours = perturbed("bert", **BERTISH, nsp_head=False)  # pooler + MLM head: BertForMaskedLM has no pooler
    export = to_hf_checkpoint(ours)
    assert export.architecture == "BertForMaskedLM"
    assert export.dropped == ["pooler.bias", "pooler.weight"] and not any("pooler" in k for k in export.state)
    head = SequenceClassifier(perturbed("bert", **BERTISH), 2)  # a default backbone still has MLM and NSP heads
    dropped = to_hf_checkpoint(head).dropped
    assert dropped and all(k.startswith(("backbone.mlm_head", "backbone.nsp_head")) for k in dropped)


@pytest.mark.parametrize(("model", "match"), [
    (lambda: create_model("gpt", **{**GPT2ISH, "pos": "rope"}), r"as GPT-2 it differs in pos='rope'.*as Llama"),
    (lambda: create_model("bert", **BERTISH, pre_norm=True), "post-norm"),
    (lambda: create_model("bert", **BERTISH, pooler=False, mlm_head=False, nsp_head=False), "has a pooler"),
    (lambda: SequenceClassifier(create_model("gpt", **GPT2ISH), 2), "for a gpt backbone"),
    (lambda: SequenceClassifier(create_model("bert", **BERTISH), 2, pooling="mean"), "pools with 'mean'"),
])
def test_models_without_a_hf_class_are_refused(model, match):
    with pytest.raises(CheckpointError, match=match):
        to_hf_checkpoint(model())


def test_out_dir_is_never_overwritten_without_force(tmp_path):
    ours = MODELS["gpt2"]()
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not empty.*--force"):
        export_model(ours, None, out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(CheckpointError, match="has a pooler"):  # a failing export with force leaves it intact
        export_model(create_model("bert", **BERTISH, pooler=False, mlm_head=False, nsp_head=False), None, out,
                     force=True)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    export_model(ours, None, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # no staging folders left behind


def test_half_precision_export(tmp_path):
    ours = MODELS["gpt2"]()
    export = export_model(ours, None, tmp_path / "hf", dtype=torch.bfloat16)
    assert export.config["torch_dtype"] == "bfloat16"
    assert {t.dtype for t in export.state.values()} == {torch.bfloat16}
    back = load_hf_model(tmp_path / "hf").model  # imported back as float32
    assert torch.equal(back.tok_emb.weight, ours.tok_emb.weight.to(torch.bfloat16).float())


def test_the_warning_check_sees_transformers_load_warnings(tmp_path, no_load_warnings):
    """The check used above is live: loading a BertModel export as BertForMaskedLM logs missing weights."""
    export_model(MODELS["bert-encoder"](), None, tmp_path / "hf")
    transformers.BertForMaskedLM.from_pretrained(tmp_path / "hf")
    with pytest.raises(AssertionError):
        no_load_warnings()
