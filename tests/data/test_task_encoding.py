"""Task encoding: framing per vocabulary, first-sub-token tagging, QA spans, deterministic padded batches."""

from __future__ import annotations

import pytest
import torch

from fromzero.data.labels import LabelVocab
from fromzero.data.task_data import QAExample, TaggedSentence, TextExample
from fromzero.data.task_encoding import (
    Framing,
    TaskBatches,
    collate,
    encode_classification,
    encode_qa,
    encode_tagging,
)
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from fromzero.data.truncation import TruncationStats
from fromzero.errors import ConfigError, DataError

TEXTS = ["John lives in Paris.", "Ada Lovelace wrote the first program.", "the cat sat on the mat"] * 20
CONTEXT = "Ada Lovelace wrote the first program."


@pytest.fixture(scope="module", params=["char", "wordpiece", "bpe"])
def tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    return train_tokenizer(TEXTS, TokenizerConfig(kind=request.param, vocab_size=300))


def test_framing_follows_the_vocabulary(tokenizer: Tokenizer) -> None:
    framing = Framing.for_tokenizer(tokenizer)
    ids, types = framing.frame([10, 11], [12])
    if tokenizer.kind == "wordpiece":
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        assert (ids, types) == ([cls_id, 10, 11, sep_id, 12, sep_id], [0, 0, 0, 0, 1, 1])
        assert framing.token_types
    else:
        eos = tokenizer.eos_id
        assert ids == [10, 11, eos, 12, eos] and not framing.token_types
    assert framing.feature(ids, types).keys() == ({"input_ids", "token_type_ids"} if framing.token_types
                                                  else {"input_ids"})


def test_classification_pairs_and_truncation(tokenizer: Tokenizer) -> None:
    framing = Framing.for_tokenizer(tokenizer)
    examples = [TextExample("the cat", 0, "sat on the mat", "f:1"), TextExample(TEXTS[1], 1, None, "f:2")]
    stats = TruncationStats()
    max_len = 8
    feats = encode_classification(examples, tokenizer, framing, max_len, [0, 1], stats=stats)
    assert all(len(f["input_ids"]) <= max_len for f in feats)
    assert [f["labels"] for f in feats] == [0, 1]
    assert stats.seen == 2 and stats.truncated >= 1
    whole = encode_classification(examples[1:], tokenizer, framing, 200, [1])[0]["input_ids"]
    assert feats[1]["input_ids"][:-1] == whole[:max_len - 1]  # the first tokens kept, the closing token re-added
    with pytest.raises(DataError, match=r"f:\d: \d+ tokens exceed the limit"):
        encode_classification(examples, tokenizer, framing, max_len, [0, 1], policy="error")
    with pytest.raises(ConfigError, match="data.max_len: 2 leaves no room"):
        encode_classification(examples, tokenizer, Framing((1,), (2,), (2,)), 2, [0, 1])


def test_tagging_labels_first_sub_token_and_cuts_at_words() -> None:
    tok = train_tokenizer(TEXTS, TokenizerConfig(kind="char"))
    framing = Framing.for_tokenizer(tok)  # char: no prefix, one closing <eos>
    vocab = LabelVocab(["O", "B-PER", "B-LOC"])
    sentence = TaggedSentence(("John", "lives", "in", "Paris"), ("B-PER", "O", "O", "B-LOC"), "f:3")
    stats = TruncationStats()
    (feat,) = encode_tagging([sentence], tok, framing, 12, vocab, stats=stats)
    # budget 11 characters: John (4) + lives (5) + in (2) = 11; Paris would be cut mid-word, so it is dropped
    assert feat["n_words"] == 3
    expected = [1, -100, -100, -100, 0, -100, -100, -100, -100, 0, -100, -100]  # last: the closing <eos>
    assert feat["labels"] == expected
    assert feat["input_ids"][:4] == [tok.token_to_id(c) for c in "John"]
    assert (stats.truncated, stats.tokens_dropped) == (1, 5)
    with pytest.raises(DataError, match="f:3: 16 tokens exceed the limit of 11; split the sentence"):
        encode_tagging([sentence], tok, framing, 12, vocab, policy="error")
    with pytest.raises(DataError, match="unknown label 'I-PER'"):
        encode_tagging([TaggedSentence(("x",), ("I-PER",), "f:4")], tok, framing, 12, vocab)


def test_tagging_every_word_labelled_once(tokenizer: Tokenizer) -> None:
    words = ("Lovelace", "wrote", "programs", "Paris")
    sentence = TaggedSentence(words, ("B-PER", "O", "O", "B-LOC"), "f:5")
    (feat,) = encode_tagging([sentence], tokenizer, Framing.for_tokenizer(tokenizer), 64,
                             LabelVocab(["O", "B-PER", "B-LOC"]))
    assert [y for y in feat["labels"] if y != -100] == [1, 0, 0, 2]
    assert len(feat["labels"]) == len(feat["input_ids"]) and feat["n_words"] == 4


def test_qa_positions_recover_the_answer(tokenizer: Tokenizer) -> None:
    framing = Framing.for_tokenizer(tokenizer)
    ex = QAExample("q", "Who wrote it?", CONTEXT, ("Lovelace",), (4,), "f:6")
    feats, maps = encode_qa([ex], tokenizer, framing, 64)
    s, e = feats[0]["start_positions"], feats[0]["end_positions"]
    assert maps[0].answer_text(CONTEXT, s, e) == "Lovelace"  # offsets point into the original text
    assert feats[0]["input_ids"][maps[0].context_start - 1] == framing.between[-1]
    # a context cut before the answer: the question stays, the span becomes -100 and is counted
    late = QAExample("q2", "What?", CONTEXT, ("program",), (CONTEXT.index("program"),), "f:7")
    stats = TruncationStats()
    feats, _ = encode_qa([late], tokenizer, framing, framing.n_special(True) + 6, stats=stats)
    assert (feats[0]["start_positions"], feats[0]["end_positions"]) == (-100, -100)
    assert stats.answers_lost == 1 and stats.truncated == 1


def test_batches_are_deterministic_epochs() -> None:
    feats = [{"input_ids": [i] * (1 + i % 3), "labels": i} for i in range(7)]
    batches = TaskBatches(feats, 3, pad_id=99, seed=5)
    assert len(batches) == 3
    epoch0 = [batches.batch(s)["labels"].tolist() for s in range(3)]
    assert sorted(sum(epoch0, [])) == list(range(7))  # every example once per epoch
    assert batches.batch(1)["labels"].tolist() == TaskBatches(feats, 3, pad_id=99, seed=5).batch(1)["labels"].tolist()
    epoch1 = [batches.batch(s)["labels"].tolist() for s in range(3, 6)]
    assert sorted(sum(epoch1, [])) == list(range(7)) and epoch1 != epoch0
    accum = TaskBatches(feats, 3, pad_id=99, seed=5, grad_accum=3)
    assert [accum.batch(0, m)["labels"].tolist() for m in range(3)] == epoch0  # micro-batches walk the epoch
    ordered = TaskBatches(feats, 3, pad_id=99, shuffle=False)
    assert [ordered.batch(i)["labels"].tolist() for i in range(3)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_collate_pads_inputs_masks_and_token_labels() -> None:
    rows = [{"input_ids": [5, 6, 7], "labels": [1, -100, 2], "n_words": 2}, {"input_ids": [8], "labels": [0],
                                                                              "n_words": 1}]
    out = collate(rows, pad_id=3, token_labels=True)
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 3, 3]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["labels"].tolist() == [[1, -100, 2], [0, -100, -100]]
    reg = collate([{"input_ids": [1], "labels": 0.5}, {"input_ids": [2, 2], "labels": -1.0}], pad_id=0)
    assert reg["labels"].dtype == torch.float32 and reg["labels"].tolist() == [0.5, -1.0]
    multi = collate([{"input_ids": [1, 2], "labels": [1, 0]}, {"input_ids": [2], "labels": [0, 1]}], pad_id=0)
    assert multi["labels"].tolist() == [[1, 0], [0, 1]]  # a multi-hot row is not padded like tokens
    assert TaskBatches(rows, 2, pad_id=3).token_labels


def test_length_grouped_batches_cover_each_epoch_once_with_less_padding() -> None:
    import random

    from fromzero.data.seq2seq_data import Seq2SeqBatches

    rng = random.Random(0)
    lengths = [rng.randint(4, 60) for _ in range(1000)]  # targets about as long as their sources, as in translation
    feats = [{"input_ids": [5] * n, "labels": [6] * (n + rng.randint(-3, 3))} for n in lengths]
    for f in feats:
        f["decoder_input_ids"] = [0, *f["labels"][:-1]]
    grouped = Seq2SeqBatches(feats, 10, pad_id=0, seed=3, group_by_length=True)
    plain = Seq2SeqBatches(feats, 10, pad_id=0, seed=3)
    n = len(grouped)
    for epoch in (0, 1):
        seen = sorted(int(i) for k in range(n) for i in grouped._indices(epoch * n + k, 0))
        assert seen == list(range(1000))  # every example exactly once per epoch
    assert [list(grouped._indices(k, 0)) for k in range(n)] != [list(grouped._indices(n + k, 0)) for k in range(n)]

    def real_fraction(batches: Seq2SeqBatches) -> float:  # real tokens / padded tokens over one epoch
        real = padded = 0
        for k in range(n):
            b = batches.batch(k)
            real += int(b["attention_mask"].sum()) + int((b["labels"] != -100).sum())
            padded += b["input_ids"].numel() + b["labels"].numel()
        return real / padded

    assert real_fraction(grouped) > 0.85 > 0.6 > real_fraction(plain)
    # a pure function of (seed, step): a fresh object (a resumed run) draws the same batch
    again = Seq2SeqBatches(feats, 10, pad_id=0, seed=3, group_by_length=True)
    assert torch.equal(again.batch(n + 7)["input_ids"], grouped.batch(n + 7)["input_ids"])
    # evaluation batches (no shuffle) stay consecutive slices
    assert list(Seq2SeqBatches(feats, 10, pad_id=0, shuffle=False, group_by_length=True)._indices(2, 0)) == \
        list(range(20, 30))
