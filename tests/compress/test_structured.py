"""Structured pruning: removing heads / hidden units really shrinks the model (parameter counts against hand
formulas), and where the removed units contributed nothing (their output-projection columns zeroed by hand)
the outputs are unchanged, for GPT, T5 (shared relative position bias, cross-attention) and a BERT
classifier; the pruned GPT still generates with its KV cache; a pruned run reloads with identical logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fromzero.compress.structured import attention_layers, ffn_layers, importance, prune_structured
from fromzero.errors import ConfigError
from fromzero.generation.generate import generate_tokens
from fromzero.generation.sampling import SamplingConfig
from fromzero.generation.seq2seq import generate_seq2seq
from fromzero.models import build_model, model_config
from fromzero.models.heads import build_head


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _gpt(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(model_config("gpt-char-tiny", {"n_embd": 32, "n_head": 4, "block_size": 24, **kw})).eval()


def _zero_heads(attn: torch.nn.Module, heads: list[int]) -> None:
    with torch.no_grad():
        for h in heads:
            attn.proj.weight[:, h * attn.head_dim:(h + 1) * attn.head_dim] = 0.0


def test_head_removal_drops_the_hand_counted_parameters() -> None:
    model = _gpt()
    C, hd, before = 32, 8, _params(model)
    step = prune_structured(model, "heads", 0.5, "layer")
    assert step["heads"] == {"blocks.0.attn": 2, "blocks.1.attn": 2}
    assert before - _params(model) == 2 * 2 * (3 * hd * C + 3 * hd + C * hd)  # 2 layers x 2 heads


def test_neuron_removal_drops_the_hand_counted_parameters_globally() -> None:
    model = _gpt()
    C, before = 32, _params(model)
    step = prune_structured(model, "neurons", 0.25, "global")
    assert sum(128 - n for n in step["neurons"].values()) == 64  # round(0.25 * 2 * 128)
    assert before - _params(model) == 64 * (C + 1 + C)  # fc row + fc bias + proj column


def test_heads_that_contribute_nothing_are_the_ones_removed_and_outputs_are_unchanged() -> None:
    model = _gpt()
    _zero_heads(model.blocks[0].attn, [0, 1])
    _zero_heads(model.blocks[1].attn, [3])
    ids = torch.randint(0, 128, (2, 10))
    before = model(ids)
    step = prune_structured(model, "heads", 3 / 8, "global")  # weight importance: the zeroed heads score 0
    assert step["heads"] == {"blocks.0.attn": 2, "blocks.1.attn": 3}
    assert model.blocks[0].attn.head_index.tolist() == [2, 3]
    torch.testing.assert_close(model(ids), before, atol=1e-6, rtol=0)
    # the pruned GPT generates, and its (per-layer sized) KV cache gives the uncached tokens
    cfg = SamplingConfig(max_new_tokens=8, greedy=True)
    cached = list(generate_tokens(model, [[1, 2, 3]], cfg, use_cache=True))
    uncached = list(generate_tokens(model, [[1, 2, 3]], cfg, use_cache=False))
    assert cached == uncached and len(cached) == 8


def test_neurons_with_no_activation_contribution_are_removed_first() -> None:
    model = _gpt()
    with torch.no_grad():
        model.blocks[1].mlp.proj.weight[:, :40] = 0.0
    ids = torch.randint(0, 128, (3, 12))
    before = model(ids)
    batches = [{"input_ids": ids}]
    scores = importance(model, "neurons", batches, lambda m, b: m(b["input_ids"]))
    assert (scores["blocks.1.mlp"][:40] == 0).all() and (scores["blocks.1.mlp"][40:] > 0).all()
    step = prune_structured(model, "neurons", 40 / 256, "global", batches, lambda m, b: m(b["input_ids"]))
    assert step["neurons"] == {"blocks.1.mlp": 88} and step["importance"] == "activations"
    torch.testing.assert_close(model(ids), before, atol=1e-6, rtol=0)


def test_t5_heads_with_shared_bias_and_cross_attention() -> None:
    torch.manual_seed(1)
    model = build_model(model_config("t5-tiny", {"vocab_size": 40, "d_model": 16, "d_kv": 4, "d_ff": 32,
                                                 "dropout": 0.0})).eval()
    layers = attention_layers(model)
    assert "decoder.blocks.0.cross_attn" in layers and len(layers) == 6
    zeroed = {"encoder.blocks.0.attn": [1, 2], "decoder.blocks.1.attn": [0], "decoder.blocks.0.cross_attn": [3]}
    for name, heads in zeroed.items():
        _zero_heads(layers[name], heads)
    src, tgt = torch.randint(2, 40, (2, 7)), torch.randint(2, 40, (2, 5))
    before = model(src, decoder_input_ids=tgt)
    step = prune_structured(model, "heads", 4 / 24, "global")
    assert step["heads"] == {name: 4 - len(h) for name, h in zeroed.items()}
    torch.testing.assert_close(model(src, decoder_input_ids=tgt), before, atol=1e-6, rtol=0)
    out = list(generate_seq2seq(model, [[3, 4, 5]], SamplingConfig(max_new_tokens=4, greedy=True), eos_id=1,
                                pad_id=0, decoder_start_id=0))
    assert out == list(generate_seq2seq(model, [[3, 4, 5]], SamplingConfig(max_new_tokens=4, greedy=True),
                                        use_cache=False, eos_id=1, pad_id=0, decoder_start_id=0))


def test_bert_classifier_evaluates_after_neuron_and_head_removal() -> None:
    torch.manual_seed(2)
    bert = build_model(model_config("bert-tiny", {"vocab_size": 50, "n_embd": 16, "n_head": 4,
                                                  "max_positions": 16, "dropout": 0.0}))
    clf = build_head(bert, "sequence_classification", 3).eval()
    assert set(ffn_layers(clf)) == {"backbone.blocks.0.mlp", "backbone.blocks.1.mlp"}
    prune_structured(clf, "heads", 0.5, "layer")
    prune_structured(clf, "neurons", 0.3, "layer")
    assert clf.backbone.blocks[0].mlp.proj.in_features == 64 - 19
    logits = clf(torch.randint(0, 50, (2, 9)), attention_mask=torch.ones(2, 9, dtype=torch.long))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_grouped_query_attention_and_bad_amounts_are_refused() -> None:
    gqa = _gpt(n_kv_head=2)
    with pytest.raises(ConfigError, match="grouped-query") as err:
        prune_structured(gqa, "heads", 0.5)
    assert "\n" not in str(err.value)
    prune_structured(gqa, "neurons", 0.5)  # neurons are fine under GQA
    for amount in (1.0, -0.5):
        with pytest.raises(ConfigError, match="--sparsity"):
            prune_structured(_gpt(), "heads", amount)


def test_structured_run_reloads_with_identical_logits(tiny_run: Path, tmp_path: Path) -> None:
    from fromzero.compress.prune_run import prune_run
    from fromzero.runs import load_run

    out = tmp_path / "heads"
    result = prune_run(tiny_run, out, sparsity=0.5, structured="heads", scope="layer", calibration=2, progress=False)
    source = load_run(tiny_run)  # fresh: prune_run pruned its own copy
    assert result.parameters_before == _params(source.model)
    loaded = load_run(out)
    assert _params(loaded.model) == result.report["parameters"] < result.parameters_before
    steps = json.loads((out / "compression.json").read_text())["steps"]
    assert steps[0]["op"] == "structured" and steps[0]["heads"] == {"blocks.0.attn": 2, "blocks.1.attn": 2}
    ids = torch.randint(0, source.tokenizer.vocab_size, (2, 16))
    assert torch.equal(loaded.model(ids), result.model(ids))
    cfg = SamplingConfig(max_new_tokens=6, greedy=True)
    assert len(list(generate_tokens(loaded.model, [[1, 2]], cfg))) == 6
