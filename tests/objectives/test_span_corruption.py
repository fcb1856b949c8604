"""T5 span corruption: length arithmetic, the noise mask, the sentinel format, reconstruction, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fromzero.config import InvalidValue
from fromzero.data.span_corruption_batches import (
    SpanCorruptionBatches,
    SpanCorruptionConfig,
    corrupt,
    input_and_target_lengths,
    merge,
    random_spans_noise_mask,
    sentinel_tokens,
)
from fromzero.eval.baselines import span_baseline
from fromzero.objectives import SpanCorruption

PAD, EOS = 0, 1
V = 300
SENTINELS = list(range(V - 1, V - 101, -1))  # <extra_id_0> = V - 1, counting down, as in T5's vocabulary


def test_config_is_validated() -> None:
    with pytest.raises(InvalidValue, match="noise_density"):
        SpanCorruptionConfig(noise_density=1.0)
    with pytest.raises(InvalidValue, match="mean_span_length"):
        SpanCorruptionConfig(mean_span_length=0.5)


def test_length_arithmetic_matches_t5_reference() -> None:
    # By hand, for inputs_length 512, density 0.15, mean span 3:
    #   t = 568: noise = round(85.2) = 85, spans = round(85 / 3) = 28,
    #            inputs = (568 - 85) + 28 + 1 = 512, targets = 85 + 28 + 1 = 114
    #   t = 569: noise = round(85.35) = 85, inputs = 484 + 28 + 1 = 513 > 512, so 568 is the largest.
    # The same (568, 114) is what T5's random_spans_helper gives and Hugging Face's run_t5_mlm_flax uses.
    assert input_and_target_lengths(512, 0.15, 3.0) == (568, 114)
    # inputs_length 128: t = 141: noise = round(21.15) = 21, spans = 7, inputs = 120 + 7 + 1 = 128, targets = 29;
    #                    t = 142: noise = round(21.3) = 21, inputs = 121 + 7 + 1 = 129 > 128.
    assert input_and_target_lengths(128, 0.15, 3.0) == (141, 29)


def test_sentinel_names() -> None:
    assert sentinel_tokens(3) == ["<extra_id_0>", "<extra_id_1>", "<extra_id_2>"]


def test_paper_example_format() -> None:
    # "Thank you for inviting me to your party last week" = tokens 10..19; drop "for inviting" and "last".
    tokens = torch.arange(10, 20)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[2, 3, 8]] = True
    s0, s1, s2 = SENTINELS[:3]
    inputs, targets = corrupt(tokens, mask, SENTINELS, EOS)
    assert inputs.tolist() == [10, 11, s0, 14, 15, 16, 17, s1, 19, EOS]
    assert targets.tolist() == [s0, 12, 13, s1, 18, s2, EOS]  # the paper's trailing <Z>
    assert merge(inputs, targets, SENTINELS, EOS) == tokens.tolist()
    with pytest.raises(ValueError):
        corrupt(tokens, ~mask, SENTINELS, EOS)  # masks start with non-noise, as T5's do


def test_merge_inverts_corrupt_for_many_seeds_and_lengths() -> None:
    gen = torch.Generator().manual_seed(0)
    for length in [2, 3, 5, 17, 64, 100, 333]:
        for _ in range(20):
            tokens = torch.randint(2, V - 100, (length,), generator=gen)
            mask = random_spans_noise_mask(length, 0.15, 3.0, gen)
            inputs, targets = corrupt(tokens, mask, SENTINELS, EOS)
            assert merge(inputs, targets, SENTINELS, EOS) == tokens.tolist()
            assert len(inputs) + len(targets) == length + 2 * int((mask[1:] & ~mask[:-1]).sum()) + 2


def test_noise_mask_density_and_span_length() -> None:
    gen = torch.Generator().manual_seed(1)
    span_lengths, densities = [], []
    for _ in range(300):
        mask = random_spans_noise_mask(568, 0.15, 3.0, gen)
        assert not mask[0] and mask[-1], "non-noise first, noise last"
        starts = (mask[1:] & ~mask[:-1]).nonzero().flatten() + 1
        ends = (~mask[1:] & mask[:-1]).nonzero().flatten() + 1
        ends = torch.cat([ends, torch.tensor([568])])
        assert int(mask.sum()) == 85 and len(starts) == 28  # exactly the counts of the length arithmetic
        span_lengths += (ends - starts).tolist()
        densities.append(float(mask.float().mean()))
    assert abs(np.mean(densities) - 0.15) < 0.002
    assert abs(np.mean(span_lengths) - 3.0) < 0.05 and max(span_lengths) > 6  # random, not fixed, lengths
    for length in range(20, 400, 37):  # other lengths: density within rounding
        assert abs(float(random_spans_noise_mask(length, 0.15, 3.0, gen).float().mean()) - 0.15) <= 0.5 / length


def test_input_length_is_exact_for_every_length() -> None:
    gen = torch.Generator().manual_seed(2)
    for input_length in range(8, 400, 13):
        tokens_length, targets_length = input_and_target_lengths(input_length, 0.15, 3.0)
        inputs, targets = corrupt(torch.arange(2, 2 + tokens_length),
                                  random_spans_noise_mask(tokens_length, 0.15, 3.0, gen), SENTINELS, EOS)
        assert len(inputs) == input_length and len(targets) == targets_length


def _source(**overrides) -> SpanCorruptionBatches:
    tokens = np.arange(2, 5002) % (V - 102) + 2  # ids 2..199, consecutive: merged rows must be runs
    kwargs = dict(input_length=64, batch_size=8, seed=5, cfg=SpanCorruptionConfig(), sentinel_ids=SENTINELS,
                  eos_id=EOS, pad_id=PAD)
    kwargs.update(overrides)
    return SpanCorruptionBatches(tokens, **kwargs)


def test_batches_lengths_shift_and_reconstruction() -> None:
    source = _source()
    batch = source.batch(7, 2)
    assert all(torch.equal(v, source.batch(7, 2)[k]) for k, v in batch.items())
    assert not torch.equal(batch["input_ids"], source.batch(7, 3)["input_ids"])
    t = source.targets_length
    assert batch["input_ids"].shape == (8, 64) and batch["attention_mask"].all()
    assert batch["labels"].shape == batch["decoder_input_ids"].shape == batch["decoder_attention_mask"].shape == (8, t)
    assert (batch["input_ids"][:, -1] == EOS).all() and (batch["labels"][:, -1] == EOS).all()
    assert (batch["decoder_input_ids"][:, 0] == PAD).all()
    assert torch.equal(batch["decoder_input_ids"][:, 1:], batch["labels"][:, :-1])
    spans, labels = batch["target_span_ids"], batch["labels"]
    is_marker = torch.isin(labels, torch.tensor([*SENTINELS, EOS]))
    assert ((spans > 0) == ~is_marker).all()  # every non-sentinel, non-eos target token is in a span
    assert (spans.amax(1) == is_marker.sum(1) - 1).all()  # spans numbered 1..n_sentinels_used
    for inputs, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        original = merge(inputs, labels[labels != -100], SENTINELS, EOS)
        assert len(original) == source.tokens_length
        assert all((b - a) % (V - 102) == 1 for a, b in zip(original, original[1:], strict=False))


def test_batches_refuse_too_few_sentinels() -> None:
    with pytest.raises(ValueError, match="sentinel"):
        _source(input_length=512, sentinel_ids=SENTINELS[:10])


class MockT5(nn.Module):
    """Logits = embedding(decoder input) + a summary of the encoder input; enough to train and backprop."""

    def __init__(self, vocab: int, dim: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.out = nn.Linear(dim, vocab)

    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None):
        enc = self.emb(input_ids).mean(1, keepdim=True)
        return self.out(self.emb(decoder_input_ids) + enc)


class FixedLogits(nn.Module):
    def __init__(self, predictions: torch.Tensor, vocab: int) -> None:
        super().__init__()
        self.logits = nn.functional.one_hot(predictions, vocab).float()

    def forward(self, input_ids, **_):
        return self.logits


def test_objective_trains_and_counts_accuracy_by_hand() -> None:
    batch = _source(input_length=32, batch_size=4).batch(0)
    model = MockT5(V)
    out = SpanCorruption(SpanCorruptionConfig())(model, batch)
    assert torch.isfinite(out.loss) and out.weight == int((batch["labels"] != -100).sum())
    assert {"loss", "token_accuracy", "span_accuracy"} <= set(out.metrics)
    out.loss.backward()
    assert model.emb.weight.grad.abs().sum() > 0
    s0, s1 = SENTINELS[:2]
    labels = torch.tensor([[s0, 5, 6, s1, 7, EOS, -100]])
    predicted = torch.tensor([[s0, 5, 9, s1, 7, EOS, 3]])
    out = SpanCorruption()(FixedLogits(predicted, V), {
        "input_ids": torch.zeros(1, 3, dtype=torch.long), "decoder_input_ids": predicted, "labels": labels,
        "target_span_ids": torch.tensor([[0, 1, 1, 0, 2, 0, 0]])})
    assert out.metrics["token_accuracy"] == pytest.approx(5 / 6)
    assert out.metrics["span_accuracy"] == pytest.approx(0.5)  # span 0 (5 6) wrong, span 1 (7) right
    assert span_baseline(labels, np.bincount([5, 7, 7, 9], minlength=V)) == pytest.approx(1 / 6)
