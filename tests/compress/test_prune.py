"""Unstructured pruning (magnitude, Wanda). References: a naive sort of every |W| for the global threshold,
a naive per-token loop for Wanda's input norms and scores, floor(s * n + 0.5) written out for counts; the
end-to-end command on a tiny trained run: the pruned run reloads with identical logits, 0% pruning changes
no output bit, bad inputs are one line with nothing written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fromzero.compress.prune import (
    global_masks,
    input_norms,
    layer_masks,
    prunable_linears,
    prune_weights,
    weight_scores,
)
from fromzero.models import build_model, model_config
from fromzero.models.heads import build_head


def _gpt(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(model_config("gpt-char-tiny", {"n_embd": 32, "n_head": 4, "block_size": 16})).eval()


def _half_up(s: float, n: int) -> int:
    return math.floor(s * n + 0.5)


def test_prunable_set_is_the_block_linears_only() -> None:
    names = set(prunable_linears(_gpt()))
    assert names == {f"blocks.{i}.{m}" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}
    t5 = build_model(model_config("t5-tiny", {"vocab_size": 50, "d_model": 16, "d_kv": 4, "d_ff": 32}))
    t5_names = set(prunable_linears(t5))
    assert "decoder.blocks.0.cross_attn.kv" in t5_names and "encoder.blocks.1.mlp.fc" in t5_names
    assert not any("lm_head" in n or "rel_bias" in n for n in t5_names) and len(t5_names) == 2 * 4 + 2 * 7
    bert = build_model(model_config("bert-tiny", {"vocab_size": 50, "n_embd": 16, "n_head": 2, "max_positions": 16}))
    clf = build_head(bert, "sequence_classification", 3)
    clf_names = set(prunable_linears(clf))
    assert len(clf_names) == 8 and all(n.startswith("backbone.blocks.") for n in clf_names)


def test_layer_scope_gives_exactly_the_sparsity_per_layer_and_zeroes_the_smallest() -> None:
    model = _gpt()
    before = {n: m.weight.detach().clone() for n, m in prunable_linears(model).items()}
    masks = prune_weights(model, 0.37, "magnitude", "layer")
    for name, linear in prunable_linears(model).items():
        w, keep = linear.weight.detach(), masks[name]
        assert int((~keep).sum()) == _half_up(0.37, w.numel()) == int((w == 0).sum())
        assert not torch.signbit(w[~keep]).any()  # exactly +0.0
        assert before[name][~keep].abs().max() <= before[name][keep].abs().min()
        assert torch.equal(w[keep], before[name][keep])


def test_global_threshold_equals_a_naive_sort() -> None:
    model = _gpt(1)
    layers = prunable_linears(model)
    values = [(abs(v), name, i) for name, m in layers.items() for i, v in enumerate(m.weight.flatten().tolist())]
    values.sort()
    k = _half_up(0.6, len(values))
    expected = {(name, i) for _, name, i in values[:k]}
    masks = global_masks(weight_scores(layers, "magnitude"), 0.6)
    got = {(name, i) for name, keep in masks.items() for i in (~keep).flatten().nonzero().flatten().tolist()}
    assert got == expected
    sparsities = {name: float((~keep).float().mean()) for name, keep in masks.items()}
    assert len(set(round(s, 3) for s in sparsities.values())) > 1  # layers differ under one threshold


def test_wanda_scores_and_norms_equal_a_naive_loop_with_padding_excluded() -> None:
    model = _gpt(2)
    ids = torch.randint(0, 128, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[0, 4:] = 0
    mask[2, 2:] = 0  # right padding
    batches = [{"input_ids": ids, "attention_mask": mask}]
    name = "blocks.1.mlp.fc"
    layer = model.get_submodule(name)
    seen = []
    handle = layer.register_forward_hook(lambda m, a, o: seen.append(a[0].detach().clone()))
    with torch.no_grad():
        model(ids, attention_mask=mask)
    handle.remove()
    x = seen[0]  # (B, T, in)
    W = layer.weight.detach()
    naive = torch.zeros_like(W)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            total = sum(float(x[b, t, j]) ** 2 for b in range(3) for t in range(6) if mask[b, t])
            naive[i, j] = abs(float(W[i, j])) * math.sqrt(total)
    norms = input_norms(model, [name], batches, lambda m, b: m(b["input_ids"], attention_mask=b["attention_mask"]))
    scores = weight_scores({name: layer}, "wanda", norms)[name]
    torch.testing.assert_close(scores, naive, rtol=1e-5, atol=1e-6)
    # layer scope with wanda: each output row loses exactly round(s * in_features)
    keep = layer_masks({name: scores}, 0.5, per_row=True)[name]
    assert ((~keep).sum(1) == _half_up(0.5, W.shape[1])).all()
    for row in range(W.shape[0]):
        assert naive[row][~keep[row]].max() <= naive[row][keep[row]].min()


def test_zero_sparsity_changes_no_output_bit() -> None:
    model = _gpt(3)
    ids = torch.randint(0, 128, (2, 10))
    before = model(ids)
    prune_weights(model, 0.0, "magnitude", "global")
    prune_weights(model, 0.0, "magnitude", "layer")
    assert torch.equal(model(ids), before)


# --- the command, on a tiny trained run ------------------------------------------------------------------------

def _main(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from fromzero.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_prune_command_writes_a_run_that_reloads_identically(tiny_run: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    from fromzero.compress.prune_run import prune_run
    from fromzero.runs import load_run

    out = tmp_path / "wanda"
    result = prune_run(tiny_run, out, sparsity=0.5, method="wanda", scope="layer", calibration=2, progress=False)
    pruned = load_run(out)
    report = json.loads((out / "sparsity.json").read_text())
    assert report["sparsity"] == result.report["sparsity"] and 0.49 < report["sparsity"] < 0.51
    steps = json.loads((out / "compression.json").read_text())["steps"]
    assert steps == [{"op": "prune", "method": "wanda", "sparsity": 0.5, "scope": "layer", "calibration": 2}]
    ids = torch.randint(0, load_run(tiny_run).tokenizer.vocab_size, (2, 12))
    assert torch.equal(pruned.model(ids), result.model(ids))
    for name, linear in prunable_linears(pruned.model).items():  # wanda, layer scope: per output row
        zeros_per_row = (linear.weight.detach() == 0).sum(1)
        assert (zeros_per_row == _half_up(0.5, linear.in_features)).all(), name

    code, printed, _ = _main([
        "compress", "prune", str(tiny_run), "--sparsity", "0.3", "--scope", "global", "--out",
        str(tmp_path / "mag"), "--no-progress"], capsys)
    assert code == 0 and "total (prunable)" in printed and "30.00%" in printed
    assert json.loads((tmp_path / "mag" / "sparsity.json").read_text())["sparsity"] == pytest.approx(0.3, abs=1e-4)


@pytest.mark.parametrize("extra, expected", [
    (["--sparsity", "1.0"], "--sparsity"),
    (["--sparsity", "-0.1"], "--sparsity"),
    (["--sparsity", "0.5", "--method", "random"], "--method"),
    (["--sparsity", "0.5", "--method", "wanda", "--calibration", "0"], "--calibration"),
    (["--sparsity", "0.5", "--structured", "layers"], "--structured"),
])
def test_bad_options_are_one_line_and_write_nothing(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                     extra: list[str], expected: str) -> None:
    out = tmp_path / "out"
    code, _, err = _main(["compress", "prune", str(tiny_run), *extra, "--out", str(out)], capsys)
    assert code == 2 and expected in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not out.exists()


def test_existing_output_and_missing_run_are_refused(tiny_run: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = _main(["compress", "prune", str(tiny_run), "--sparsity", "0.5", "--out", str(out)], capsys)
    assert code == 2 and str(out) in err and err.count("\n") == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    code, _, err = _main(["compress", "prune", str(tmp_path / "nope"), "--sparsity", "0.5", "--out",
                          str(tmp_path / "o2")], capsys)
    assert code == 2 and "config.yaml" in err and not (tmp_path / "o2").exists()
