"""models.rnn: the recurrent LM against torch's modules, under padding, in a task head, decoding, and trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fromzero.errors import ConfigError
from fromzero.generation import SamplingConfig
from fromzero.generation.generate import generate_tokens
from fromzero.models import create_model, model_config
from fromzero.models.heads import SequenceClassifier
from fromzero.objectives import CausalLM

TINY = {"vocab_size": 11, "n_embd": 6, "hidden": 8, "n_layer": 2, "block_size": 16}


def _model(cell: str, fused: bool = True, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(f"{cell}-char-small", **{**TINY, "cell": cell, "fused": fused, **kw}).eval()


def _reference_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The same weights in torch's own layers: Embedding -> nn.LSTM / nn.GRU -> Linear."""
    c = model.config
    rnn = (torch.nn.LSTM if c.cell == "lstm" else torch.nn.GRU)(c.n_embd, c.hidden, c.n_layer, batch_first=True)
    rnn.load_state_dict(model.rnn.state_dict())
    out, _ = rnn(torch.nn.functional.embedding(ids, model.tok_emb.weight))
    return torch.nn.functional.linear(out, model.lm_head.weight, model.lm_head.bias)


@pytest.mark.parametrize("fused", [False, True], ids=["loop", "fused"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_logits_equal_torch_layers_with_the_same_weights(cell: str, fused: bool) -> None:
    model = _model(cell, fused)
    ids = torch.randint(0, 11, (3, 9))
    logits = model(ids)
    assert logits.shape == (3, 9, 11)
    torch.testing.assert_close(logits, _reference_logits(model, ids), atol=1e-5, rtol=0)


def test_initial_loss_is_near_uniform_and_both_paths_give_the_same_gradients() -> None:
    loop, fused = _model("lstm", fused=False).train(), _model("lstm", fused=True).train()
    fused.load_state_dict(loop.state_dict())
    ids = torch.randint(0, 11, (4, 12))
    batch = {"input_ids": ids[:, :-1], "labels": ids[:, 1:]}
    out_loop, out_fused = CausalLM()(loop, batch), CausalLM()(fused, batch)
    assert abs(out_loop.loss.item() - torch.log(torch.tensor(11.0)).item()) < 0.2  # ln V at init
    out_loop.loss.backward()
    out_fused.loss.backward()
    for (name, p), q in zip(loop.named_parameters(), fused.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=0, msg=name)


def test_tied_weights_share_one_tensor_and_need_equal_widths() -> None:
    model = _model("gru", n_embd=8, tie_weights=True)
    assert model.lm_head.weight is model.tok_emb.weight
    with pytest.raises(ConfigError, match="tie_weights.*model.n_embd=8"):
        model_config("lstm-char-small", {**TINY, "tie_weights": True})


@pytest.mark.parametrize("left", [False, True], ids=["right", "left"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_classifier_head_reads_each_rows_last_real_token(cell: str, left: bool) -> None:
    """SequenceClassifier (models/heads.py) on the RNN: a padded batch scores each row as it would alone
    (left padding: leading pads must leave the state at zero)."""
    head = SequenceClassifier(_model(cell), num_labels=3).eval()
    assert head.pooling == "last" and head.hidden_size == 8  # the state width, not the embedding's
    rows = [torch.randint(0, 11, (n,)) for n in (9, 4, 6)]
    ids = torch.zeros(3, 9, dtype=torch.long)
    mask = torch.zeros(3, 9, dtype=torch.long)
    for r, row in enumerate(rows):
        place = slice(9 - len(row), 9) if left else slice(0, len(row))
        ids[r, place], mask[r, place] = row, 1
    batched = head(ids, attention_mask=mask)
    alone = torch.cat([head(row[None]) for row in rows])
    torch.testing.assert_close(batched, alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_prefill_and_decode_steps_give_the_full_forward_logits(cell: str) -> None:
    model = _model(cell)
    ids = torch.randint(0, 11, (2, 8))
    full = model(ids)  # (2, 8, V)
    cache = model.new_cache(2)
    with torch.inference_mode():
        first = model.prefill(ids[:, :5], torch.tensor([5, 5]), cache)
        steps = [model.decode_step(ids[:, t], torch.full((2,), t), cache, t + 1) for t in range(5, 8)]
    torch.testing.assert_close(first, full[:, 4], atol=1e-6, rtol=0)
    for t, logits in zip(range(5, 8), steps, strict=True):
        torch.testing.assert_close(logits, full[:, t], atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cached_generation_equals_recomputing_every_window(cell: str) -> None:
    """Prompts of different lengths, a window that slides (block_size 16, 30 new tokens), greedy."""
    model = _model(cell)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 1], [2]]
    cfg = SamplingConfig(max_new_tokens=30, greedy=True)
    cached = list(generate_tokens(model, prompts, cfg, use_cache=True))
    recomputed = list(generate_tokens(model, prompts, cfg, use_cache=False))
    assert len(cached) == 30 and cached == recomputed


def test_pretrain_generate_and_eval_from_the_command_line(small_corpus: Path, tiny_overrides: list[str],
                                                        tmp_path: Path) -> None:
    """The causal-LM pretraining task trains an LSTM unchanged; its run generates and evaluates."""
    from fromzero.cli import main
    from fromzero.pretrain.runner import pretrain
    from fromzero.train.loggers import read_metrics

    overrides = [*tiny_overrides, "--model.name=lstm-char-small", "--model.hidden=64", "--model.n_embd=32",
                 f"--data.inputs=[{small_corpus}]", "--train.max_steps=30", "--train.eval_every=30",
                 "--optim.lr=1e-2"]
    result = pretrain(None, overrides, out=tmp_path / "run", progress=False)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0] - 0.5, losses
    assert result.samples
    assert main(["generate", str(tmp_path / "run"), "--prompt", "Eliz", "--max-tokens", "5", "--greedy"]) == 0
    assert main(["eval", str(tmp_path / "run"), "--batches", "2", "--batch-size", "4"]) == 0
