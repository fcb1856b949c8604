"""Masked LM + NSP: masking statistics, whole words, NSP pairs, packing, batches, the objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fromzero.config import InvalidValue
from fromzero.data.masked_lm_batches import MaskedLMBatches, MaskedLMConfig, mask_tokens
from fromzero.data.nsp_pairs import documents_from_stream, nsp_pair, pack_pair
from fromzero.data.word_segmentation import (
    chinese_word_ids,
    chinese_word_starts,
    word_starts_from_word_ids,
    wordpiece_word_ids,
    wordpiece_word_starts,
)
from fromzero.eval.baselines import mlm_baseline, nsp_baseline
from fromzero.objectives import MaskedLM

PAD, CLS, SEP, MASK, EOS = 0, 1, 2, 3, 4
SPECIALS = [PAD, CLS, SEP, MASK, EOS]
V = 1000


def _special_batch(b: int = 64, t: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of [CLS] tokens [SEP] [PAD]... with a few [SEP]s inside; returns ids and special mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (b, t), generator=g)
    ids[torch.rand(b, t, generator=g) < 0.02] = SEP
    lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    pad = torch.arange(t)[None, :] >= lengths[:, None]
    ids[pad] = PAD
    ids[:, 0] = CLS
    return ids, torch.isin(ids, torch.tensor(SPECIALS)) | pad


def test_config_is_validated() -> None:
    with pytest.raises(InvalidValue, match="mask_prob"):
        MaskedLMConfig(mask_prob=0.0)
    with pytest.raises(InvalidValue, match="random_token_prob"):
        MaskedLMConfig(mask_token_prob=0.95, random_token_prob=0.1)


def test_masking_statistics_15_percent_and_80_10_10() -> None:
    ids, special = _special_batch()
    cfg = MaskedLMConfig()
    inputs, labels = mask_tokens(ids, special, cfg, torch.Generator().manual_seed(1), MASK, V, special_ids=SPECIALS)
    selected = labels != -100
    assert not (selected & special).any(), "special and padding tokens are never selected"
    assert (inputs[~selected] == ids[~selected]).all() and (labels[selected] == ids[selected]).all()
    n = (~special).sum(1)
    assert (selected.sum(1) == torch.round(n * 0.15).long()).all()  # exactly round(p * n) per row
    assert abs(selected.sum() / (~special).sum() - 0.15) < 0.005
    total = int(selected.sum())
    masked = (inputs[selected] == MASK).sum() / total
    kept = (inputs[selected] == ids[selected]).sum() / total
    replaced = 1 - masked - kept
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.025 and abs(replaced - 0.1) < 0.025
    assert not torch.isin(inputs[selected & (inputs != MASK)], torch.tensor(SPECIALS[:3] + [EOS])).any()


def test_masking_is_deterministic_for_a_seed() -> None:
    ids, special = _special_batch(8, 64)
    cfg = MaskedLMConfig()
    runs = [mask_tokens(ids, special, cfg, torch.Generator().manual_seed(s), MASK, V) for s in (7, 7, 8)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][1], runs[2][1])


def test_whole_word_masking_masks_complete_words_only() -> None:
    g = torch.Generator().manual_seed(0)
    b, t = 32, 128
    sizes = torch.randint(1, 5, (b, t), generator=g)  # word lengths 1..4
    word_ids = torch.stack([torch.arange(t).repeat_interleave(sizes[r])[:t] for r in range(b)])
    ids = torch.randint(5, V, (b, t), generator=g)
    special = torch.zeros(b, t, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    word_ids[special] = -1
    _, labels = mask_tokens(ids, special, MaskedLMConfig(), g, MASK, V, word_ids)
    selected = labels != -100
    assert not (selected & special).any()
    for r in range(b):
        for w in word_ids[r].unique():
            if w >= 0:
                in_word = selected[r][word_ids[r] == w]
                assert in_word.all() or not in_word.any(), "a word is masked whole or not at all"
    k = torch.round((~special).sum(1) * 0.15)
    assert (selected.sum(1) <= k).all() and (selected.sum(1) >= k - 3).all()


def test_wordpiece_word_ids_and_starts() -> None:
    tokens = ["[CLS]", "un", "##aff", "##able", "is", "good", "[SEP]", "##x"]
    assert wordpiece_word_ids(tokens) == [-1, 0, 0, 0, 1, 2, -1, 3]
    vocab = ["[PAD]", "un", "##aff", "is"]
    assert wordpiece_word_starts(np.array([1, 2, 3, 2]), vocab).tolist() == [True, False, True, False]
    assert word_starts_from_word_ids([0, 0, 1, 2, 2]).tolist() == [True, False, True, True, False]


def test_chinese_word_ids_follow_jieba_segmentation() -> None:
    pytest.importorskip("jieba")
    text = "我爱北京天安门"  # jieba: 我 / 爱 / 北京 / 天安门
    per_char = [(i, i + 1) for i in range(len(text))]
    assert chinese_word_ids(text, [(0, 0), *per_char, (0, 0)]) == [-1, 0, 1, 2, 2, 3, 3, 3, -1]
    # A token straddling 爱|北京 merges both words, so a group is always whole tokens.
    assert chinese_word_ids(text, [(0, 1), (1, 3), (3, 4), (4, 7)]) == [0, 1, 1, 2]
    vocab = ["[SEP]", "我", "爱", "北", "##京", "天", "安", "门"]  # a stream of ids, a special in between
    stream = np.array([1, 2, 3, 4, 0, 5, 6, 7])
    starts = chinese_word_starts(stream, vocab, special_ids=[0])
    assert starts.tolist() == [True, True, True, False, True, True, False, False]


def test_pack_pair_segments() -> None:
    ids, types, mask = pack_pair([5, 6, 7], [8, 9], CLS, SEP, PAD, 10)
    assert ids.tolist() == [CLS, 5, 6, 7, SEP, 8, 9, SEP, PAD, PAD]
    assert types.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert mask.tolist() == [1] * 8 + [0, 0]
    ids, types, mask = pack_pair([5, 6], None, CLS, SEP, PAD, 6)
    assert ids.tolist() == [CLS, 5, 6, SEP, PAD, PAD] and types.sum() == 0 and mask.tolist() == [1, 1, 1, 1, 0, 0]
    with pytest.raises(ValueError):
        pack_pair([5] * 5, [6] * 3, CLS, SEP, PAD, 10)


def _doc_stream(n_docs: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Documents of unique, increasing token ids joined by EOS: a token's id gives its stream position."""
    rng = np.random.default_rng(seed)
    parts, next_id = [], 10
    for _ in range(n_docs):
        length = int(rng.integers(20, 300))
        parts += [np.arange(next_id, next_id + length), np.array([EOS])]
        next_id += length
    tokens = np.concatenate(parts)
    return tokens, documents_from_stream(tokens, EOS)


def test_documents_from_stream() -> None:
    assert documents_from_stream(np.array([EOS, 5, 6, EOS, EOS, 7, EOS, 8]), EOS).tolist() == [1, 5, 7]


def test_nsp_pairs_half_true_and_true_pairs_follow() -> None:
    tokens, starts = _doc_stream()
    doc_of = {int(t): d for d, (s, e) in enumerate(zip(starts, [*starts[1:], len(tokens)], strict=True))
              for t in tokens[s:e]}
    rng = np.random.default_rng(0)
    pairs = [nsp_pair(tokens, starts, 64, rng, eos_id=EOS) for _ in range(2000)]
    assert abs(np.mean([is_next for _, _, is_next in pairs]) - 0.5) < 0.04
    for a, b, is_next in pairs:
        assert len(a) >= 1 and len(b) >= 1 and len(a) + len(b) + 3 <= 64
        assert EOS not in a and EOS not in b
        assert (np.diff(a) == 1).all() and (np.diff(b) == 1).all()  # contiguous stream segments
        if is_next:
            assert b[0] == a[-1] + 1 and doc_of[int(a[0])] == doc_of[int(b[-1])]
        else:
            assert doc_of[int(a[0])] != doc_of[int(b[0])]
    assert sum(len(a) + len(b) < 61 for a, b, _ in pairs) > 100  # short targets (short_seq_prob) do occur


def test_nsp_single_document_negatives_are_far_away() -> None:
    tokens = np.arange(10, 2010)
    rng = np.random.default_rng(1)
    for _ in range(500):
        a, b, is_next = nsp_pair(tokens, np.array([0]), 32, rng)
        if not is_next:
            assert b[0] - a[-1] - 1 >= 32 or a[0] - b[-1] - 1 >= 32


def _batches(**overrides) -> MaskedLMBatches:
    tokens, starts = _doc_stream()
    tokens = np.where(tokens == EOS, EOS, 5 + tokens % (V - 5))  # ordinary vocabulary ids
    kwargs = dict(seq_len=64, batch_size=16, seed=3, cfg=MaskedLMConfig(), cls_id=CLS, sep_id=SEP, pad_id=PAD,
                  mask_id=MASK, vocab_size=V, special_ids=SPECIALS, eos_id=EOS)
    kwargs.update(overrides)
    return MaskedLMBatches(tokens, starts, **kwargs)


def test_batches_are_deterministic_and_segments_match_packing() -> None:
    source = _batches()
    batch = source.batch(5, 1)
    assert all(torch.equal(batch[k], v) for k, v in source.batch(5, 1).items())
    assert not torch.equal(batch["labels"], source.batch(5, 0)["labels"])
    ids, types, mask, labels = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape == types.shape == mask.shape == labels.shape == (16, 64) and batch["nsp_labels"].shape == (16,)
    for r in range(16):
        n = int(mask[r].sum())
        seps = (ids[r, :n] == SEP).nonzero().flatten().tolist()  # never masked, never a random replacement
        assert ids[r, 0] == CLS and len(seps) == 2 and seps[-1] == n - 1 and (ids[r, n:] == PAD).all()
        first = seps[0]
        assert (types[r, : first + 1] == 0).all() and (types[r, first + 1 : n] == 1).all() and (types[r, n:] == 0).all()
    assert ((labels != -100) <= (mask == 1)).all()
    assert not torch.isin(labels, torch.tensor(SPECIALS)).any()


def test_batches_without_nsp_and_with_whole_words() -> None:
    batch = _batches(cfg=MaskedLMConfig(nsp=False)).batch(0)
    assert "nsp_labels" not in batch and batch["token_type_ids"].sum() == 0
    tokens, _ = _doc_stream()
    word_starts = (tokens % 3) != 0  # words of a few tokens
    batch = _batches(cfg=MaskedLMConfig(whole_word=True), word_starts=word_starts).batch(2)
    assert ((batch["labels"] != -100).sum(1) >= 1).all()


class MockBert(nn.Module):
    """hidden = one-hot(input) * 10 (+ a trainable offset), so the MLM head 'predicts' the input token."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(vocab))
        self.nsp = nn.Linear(vocab, 2)
        self.mlm_rows: list[int] = []

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        return nn.functional.one_hot(input_ids, self.offset.numel()).float() * 10 + self.offset

    def mlm_logits(self, hidden):
        self.mlm_rows.append(hidden.shape[0])
        return hidden

    def pool(self, hidden):
        return torch.tanh(hidden[:, 0])

    def nsp_logits(self, pooled):
        return self.nsp(pooled)


def test_objective_loss_gradients_and_hand_made_accuracy() -> None:
    model = MockBert(16)
    batch = {
        "input_ids": torch.tensor([[CLS, MASK, 7, 8, SEP], [CLS, 9, MASK, SEP, PAD]]),
        "token_type_ids": torch.zeros(2, 5, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]),
        "labels": torch.tensor([[-100, 5, 7, -100, -100], [-100, 9, 6, -100, -100]]),
        "nsp_labels": torch.tensor([0, 1]),
    }
    out = MaskedLM()(model, batch)
    assert model.mlm_rows == [4], "the MLM head sees only the masked positions"
    assert torch.isfinite(out.loss) and out.weight == 4
    assert set(out.metrics) == {"loss", "mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"}
    assert out.metrics["mlm_accuracy"] == 0.5  # 7 -> 7 and 9 -> 9 right; [MASK] -> 5 and 6 wrong
    out.loss.backward()
    assert model.offset.grad.abs().sum() > 0 and model.nsp.weight.grad.abs().sum() > 0
    assert torch.allclose(out.metrics["loss"], out.metrics["mlm_loss"] + out.metrics["nsp_loss"])
    del batch["nsp_labels"]
    assert "nsp_loss" not in MaskedLM()(model, batch).metrics


def test_baselines() -> None:
    labels = torch.tensor([[-100, 7, 7, 8], [9, -100, 7, -100]])
    counts = np.zeros(16)
    counts[[EOS, 7, 8]] = [100, 10, 5]  # EOS is the most frequent token but never masked
    assert mlm_baseline(labels, counts, special_ids=SPECIALS) == pytest.approx(3 / 5)
    assert nsp_baseline(torch.tensor([0, 1, 1, 1])) == 0.75
