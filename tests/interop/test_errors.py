"""Mismatches are CheckpointErrors that name the tensor (and both shapes); .bin files are never unpickled; hub ids
fail at once when offline; sharded and .bin checkpoints load."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from fromzero.errors import CheckpointError
from fromzero.interop import load_hf_model, resolve_source

transformers = pytest.importorskip("transformers", reason="transformers is not installed (dev extra)")


def edit_config(folder, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def edit_weights(folder, fn) -> None:
    state = load_file(str(folder / "model.safetensors"))
    fn(state)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_unknown_architecture_lists_the_supported_ones(hf_models, tmp_path, saved):
    folder = saved(hf_models.gpt2(), tmp_path / "hf")
    edit_config(folder, architectures=["MistralForCausalLM"], model_type="mistral")
    with pytest.raises(CheckpointError, match=r"unsupported architecture MistralForCausalLM; fromzero converts "
                                              r"BertForMaskedLM.*GPT2LMHeadModel.*LlamaForCausalLM"):
        load_hf_model(folder)


def test_missing_tensor_is_named(hf_models, tmp_path, saved):
    folder = saved(hf_models.llama(), tmp_path / "hf")
    edit_weights(folder, lambda s: s.pop("model.layers.1.self_attn.k_proj.weight"))
    with pytest.raises(CheckpointError, match=r"tensor 'model.layers.1.self_attn.k_proj.weight' is missing "
                                              r"\(fromzero's 'blocks.1.attn.qkv.weight' is made from it\)"):
        load_hf_model(folder)


def test_wrong_shape_names_the_tensor_and_both_shapes(hf_models, tmp_path, saved):
    folder = saved(hf_models.bert("BertModel"), tmp_path / "hf")
    edit_config(folder, intermediate_size=64)
    with pytest.raises(CheckpointError, match=r"tensor 'bert.encoder.layer.0.intermediate.dense.weight' has shape "
                                              r"\(48, 32\), but fromzero's 'blocks.0.mlp.fc.weight' needs \(64, 32\)"
                                              r".*use the config.json that came with these weights"):
        load_hf_model(folder)


def test_transposed_and_split_shapes_are_checked_too(hf_models, tmp_path, saved):
    folder = saved(hf_models.gpt2(), tmp_path / "hf")
    edit_weights(folder, lambda s: s.update({"transformer.h.0.attn.c_attn.weight":
                                             s["transformer.h.0.attn.c_attn.weight"].t().contiguous()}))
    with pytest.raises(CheckpointError, match=r"'transformer.h.0.attn.c_attn.weight' has shape \(96, 32\).*needs "
                                              r"\(32, 96\)"):
        load_hf_model(folder)


def test_unexpected_tensor_is_named(hf_models, tmp_path, saved):
    folder = saved(hf_models.t5(gated=False), tmp_path / "hf")
    edit_weights(folder, lambda s: s.update({"encoder.block.0.layer.0.SelfAttention.extra.weight": torch.ones(2)}))
    with pytest.raises(CheckpointError, match=r"1 tensor\(s\) that fromzero's t5 model has no place for: "
                                              r"'encoder.block.0.layer.0.SelfAttention.extra.weight'"):
        load_hf_model(folder)


def test_untied_bert_decoder_cannot_be_converted_exactly(hf_models, tmp_path, saved):
    folder = saved(hf_models.bert("BertForMaskedLM"), tmp_path / "hf")
    edit_weights(folder, lambda s: s.update({"cls.predictions.decoder.weight":
                                             s["bert.embeddings.word_embeddings.weight"] + 1}))
    with pytest.raises(CheckpointError, match="'cls.predictions.decoder.weight' differs from "
                                              "'bert.embeddings.word_embeddings.weight'.*ties them"):
        load_hf_model(folder)


@pytest.mark.parametrize(("changes", "match"), [
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "rope scaling .* is not supported"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}, "rope scaling .* not supported"),
    ({"attention_bias": True}, "attention_bias=True is not supported: .* no attention biases"),
    ({"mlp_bias": True}, "mlp_bias=True is not supported"),
    ({"head_dim": 16}, r"head_dim=16 differs from hidden_size/num_attention_heads = 32/4"),
    ({"hidden_act": "gelu"}, "hidden_act='gelu' is not supported"),
])
def test_unsupported_llama_variants_are_refused(changes, match, hf_models, tmp_path, saved):
    folder = saved(hf_models.llama(), tmp_path / "hf")
    edit_config(folder, **changes)
    with pytest.raises(CheckpointError, match=match):
        load_hf_model(folder)


@pytest.mark.parametrize(("family", "changes", "match"), [
    ("gpt2", {"activation_function": "relu"}, "activation_function='relu' is not supported"),
    ("gpt2", {"scale_attn_by_inverse_layer_idx": True}, "per-layer attention scaling"),
    ("bert", {"position_embedding_type": "relative_key"}, "learned absolute positions only"),
    ("t5", {"feed_forward_proj": "gated-silu"}, "feed_forward_proj='gated-silu' is not supported"),
    ("bert", {"model_type": "roberta"}, "model_type 'roberta' but architecture BertForPreTraining"),
])
def test_unsupported_configs_are_refused(family, changes, match, hf_models, tmp_path, saved):
    model = hf_models.t5(gated=False) if family == "t5" else getattr(hf_models, family)()
    folder = saved(model, tmp_path / "hf")
    edit_config(folder, **changes)
    with pytest.raises(CheckpointError, match=match):
        load_hf_model(folder)


def test_missing_files(tmp_path, hf_models, saved):
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_hf_model(tmp_path)
    folder = saved(hf_models.gpt2(), tmp_path / "hf")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights .*model.safetensors"):
        load_hf_model(folder)


class Payload:
    """Unpickling this would run code; weights_only loading must refuse it."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_payload_in_pytorch_model_bin_is_refused(hf_models, tmp_path, saved, monkeypatch):
    folder = saved(hf_models.gpt2(), tmp_path / "hf")
    (folder / "model.safetensors").unlink()
    torch.save({"transformer.wte.weight": torch.zeros(2), "x": Payload()}, folder / "pytorch_model.bin")
    assert b"system" in (folder / "pytorch_model.bin").read_bytes()  # the payload really is in the file
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"pytorch_model.bin: refused: .*pickle.*can run code, so fromzero "
                                              "never does it; convert it"):
        load_hf_model(folder)
    assert not (tmp_path / "pwned").exists()


def test_pytorch_model_bin_and_sharded_safetensors_load(hf_models, tmp_path, saved, batch):
    hf = hf_models.gpt2()
    bin_dir = saved(hf, tmp_path / "bin")
    (bin_dir / "model.safetensors").unlink()
    torch.save(hf.state_dict(), bin_dir / "pytorch_model.bin")  # transformers 4's format, with the attn.bias buffers
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    ids, mask = batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits
        for folder in (bin_dir, tmp_path / "sharded"):
            got = load_hf_model(folder).model(ids, attention_mask=mask)
            assert (got - ref)[mask.bool()].abs().max() < 1e-4


def test_base_prefix_is_optional(hf_models, tmp_path, saved, batch):
    """GPT2Model / original gpt2 checkpoints store 'h.0...' without 'transformer.'; both spellings load."""
    hf = hf_models.gpt2()
    folder = saved(hf, tmp_path / "hf")
    edit_weights(folder, lambda s: s.update({k.removeprefix("transformer."): s.pop(k) for k in list(s)}))
    edit_config(folder, architectures=["GPT2Model"])
    ids, mask = batch()
    with torch.no_grad():
        got = load_hf_model(folder).model(ids, attention_mask=mask)
        assert (got - hf(input_ids=ids, attention_mask=mask).logits)[mask.bool()].abs().max() < 1e-4


def test_hub_id_fails_at_once_when_hub_is_switched_off(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"'gpt2' is not a local folder, and Hugging Face Hub downloads are "
                                              r"switched off \(HF_HUB_OFFLINE\); pass a local folder"):
        resolve_source("gpt2")
    assert time.monotonic() - start < 1.0


def test_hub_id_fails_at_once_without_network(monkeypatch):
    pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed (hf extra)")
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")  # .invalid never resolves: no network, on any machine
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"'openai-community/gpt2' is not a local folder, and the Hugging Face "
                                              r"Hub \(hub.invalid:443\) cannot be reached"):
        resolve_source("openai-community/gpt2")
    assert time.monotonic() - start < 5.0


def test_paths_that_do_not_exist_are_not_taken_for_hub_ids(tmp_path):
    with pytest.raises(CheckpointError, match="no such folder"):
        resolve_source(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="a file, not a folder"):
        resolve_source(str(tmp_path / "file"))
    assert resolve_source(str(tmp_path)) == tmp_path


@pytest.mark.parametrize("family", ["llama", "t5"])
def test_base_classes_without_output_layer_import_tied(family, hf_models, tmp_path, saved, batch):
    """LlamaModel / T5Model checkpoints (no lm_head): the tied output layer is the embedding, as in transformers."""
    hf = hf_models.llama(tie=True) if family == "llama" else hf_models.t5(gated=False)
    folder = saved(hf, tmp_path / "hf")
    edit_weights(folder, lambda s: [s.pop(k) for k in list(s) if k.startswith("lm_head")])
    edit_config(folder, architectures=["LlamaModel" if family == "llama" else "T5Model"])
    ours = load_hf_model(folder).model
    assert ours.lm_head.weight is ours.tok_emb.weight
    ids, mask = batch()
    with torch.no_grad():
        if family == "t5":
            got, ref = ours(ids, decoder_input_ids=ids), hf(input_ids=ids, decoder_input_ids=ids).logits
        else:
            got, ref = ours(ids), hf(input_ids=ids).logits
    assert (got - ref).abs().max() < 1e-4
