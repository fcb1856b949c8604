"""Imported models compute what transformers computes: logits within 1e-4 (fp32) on padded, masked, batched inputs,
and identical greedy generations."""

from __future__ import annotations

import pytest
import torch

from fromzero.generation import SamplingConfig, generate_seq2seq, generate_tokens
from fromzero.interop import load_hf_model
from fromzero.models.heads import SequenceClassifier, SpanQA, TokenClassifier

transformers = pytest.importorskip("transformers", reason="transformers is not installed (dev extra)")
TOL = 1e-4


def close(got: torch.Tensor, ref: torch.Tensor, where: torch.Tensor | None = None) -> None:
    if where is not None:
        got, ref = got[where], ref[where]
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < TOL
    assert ref.abs().max().item() > 0.5  # a comparison of real signal, not of near-zero numbers


def imported(hf, tmp_path, saved):
    return load_hf_model(saved(hf, tmp_path / "hf")).model


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_decoder_logits_right_and_left_padding(family, hf_models, batch, tmp_path, saved):
    hf = getattr(hf_models, family)()
    ours = imported(hf, tmp_path, saved)
    ids, mask = batch()
    with torch.no_grad():
        close(ours(ids, attention_mask=mask), hf(input_ids=ids, attention_mask=mask).logits, mask.bool())
        ids, mask = batch(left=True)  # left padding: positions count real tokens only, in both
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        ref = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        close(ours(ids, attention_mask=mask, positions=pos), ref, mask.bool())


def test_llama_with_tied_output(hf_models, batch, tmp_path, saved):
    hf = hf_models.llama(tie=True)
    ours = imported(hf, tmp_path, saved)
    assert ours.lm_head.weight is ours.tok_emb.weight and ours.config.n_kv_head == 2
    ids, mask = batch()
    with torch.no_grad():
        close(ours(ids, attention_mask=mask), hf(input_ids=ids, attention_mask=mask).logits, mask.bool())


def test_bert_for_pretraining_with_padding_and_segments(hf_models, batch, tmp_path, saved):
    hf = hf_models.bert("BertForPreTraining")
    ours = imported(hf, tmp_path, saved)
    ids, mask = batch()
    types = (torch.arange(ids.shape[1]) >= torch.tensor([6, 4, 2])[:, None]).long() * mask
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        hidden = ours(ids, attention_mask=mask, token_type_ids=types)
        close(hidden, ref.hidden_states[-1], mask.bool())
        close(ours.mlm_logits(hidden), ref.prediction_logits, mask.bool())
        close(ours.nsp_logits(ours.pool(hidden)), ref.seq_relationship_logits)


@pytest.mark.parametrize("cls", ["BertModel", "BertForMaskedLM"])
def test_bert_without_some_heads(cls, hf_models, batch, tmp_path, saved):
    hf = hf_models.bert(cls)
    ours = imported(hf, tmp_path, saved)
    c = ours.config
    assert (c.pooler, c.mlm_head, c.nsp_head) == ((True, False, False) if cls == "BertModel" else (False, True, False))
    ids, mask = batch()
    with torch.no_grad():
        hidden = ours(ids, attention_mask=mask)
        if cls == "BertModel":
            ref = hf(ids, attention_mask=mask)
            close(hidden, ref.last_hidden_state, mask.bool())
            close(ours.pool(hidden), ref.pooler_output)
        else:
            close(ours.mlm_logits(hidden), hf(ids, attention_mask=mask).logits, mask.bool())


@pytest.mark.parametrize(("cls", "head"), [("BertForSequenceClassification", SequenceClassifier),
                                           ("BertForTokenClassification", TokenClassifier),
                                           ("BertForQuestionAnswering", SpanQA)])
def test_bert_task_heads(cls, head, hf_models, batch, tmp_path, saved):
    hf = hf_models.bert(cls, num_labels=2 if head is SpanQA else 3)
    result = load_hf_model(saved(hf, tmp_path / "hf"))
    ours = result.model
    assert isinstance(ours, head) and result.labels == ([] if head is SpanQA else ["LABEL_0", "LABEL_1", "LABEL_2"])
    ids, mask = batch()
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask)
        got = ours(ids, attention_mask=mask)
        if head is SpanQA:
            close(got, torch.stack([ref.start_logits, ref.end_logits], dim=-1), mask.bool())
        elif head is TokenClassifier:
            close(got, ref.logits, mask.bool())
        else:
            close(got, ref.logits)


@pytest.mark.parametrize("gated", [False, True], ids=["t5-v1.0", "t5-v1.1"])
def test_t5_logits_with_padding(gated, hf_models, batch, tmp_path, saved):
    hf = hf_models.t5(gated)
    ours = imported(hf, tmp_path, saved)
    assert ours.config.tie_weights is not gated and ours.config.ffn == ("gated-gelu" if gated else "relu")
    ids, mask = batch()
    dec, dec_mask = batch(lengths=(9, 9, 5))
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask)
        got = ours(ids, attention_mask=mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask)
        close(got, ref.logits, dec_mask.bool())
        close(ours.encode(ids, mask), ref.encoder_last_hidden_state, mask.bool())


PROMPTS = [[5, 17, 42, 9, 33], [120, 7], [64, 3, 99, 150, 11, 18, 27, 4]]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_greedy_generation_is_identical(family, hf_models, tmp_path, saved):
    hf = getattr(hf_models, family)()
    ours = imported(hf, tmp_path, saved)
    steps = list(generate_tokens(ours, PROMPTS, SamplingConfig(max_new_tokens=12, greedy=True), eos_id=None))
    for row, prompt in zip(zip(*steps, strict=True), PROMPTS, strict=True):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                              max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
        assert list(row) == ref[0, len(prompt):].tolist()


@pytest.mark.parametrize("gated", [False, True], ids=["t5-v1.0", "t5-v1.1"])
def test_t5_greedy_generation_is_identical(gated, hf_models, tmp_path, saved):
    hf = hf_models.t5(gated, n_dec=2)  # transformers 5's generate() sizes its cache by the encoder depth
    ours = imported(hf, tmp_path, saved)
    steps = list(generate_seq2seq(ours, PROMPTS, SamplingConfig(max_new_tokens=10, greedy=True), eos_id=1, pad_id=0,
                                  decoder_start_id=0))
    for row, prompt in zip(zip(*steps, strict=True), PROMPTS, strict=True):
        with torch.no_grad():
            ref = hf.generate(input_ids=torch.tensor([prompt]), max_new_tokens=10, do_sample=False)[0, 1:].tolist()
        toks = [t for t in row if t is not None]
        assert toks == ref[: len(toks)] and len(toks) >= 1
        assert len(toks) == 10 or toks[-1] == 1
