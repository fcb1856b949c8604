"""Task heads: shapes on every family, padding invariance, pooling against naive references, names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fromzero.models import create_model
from fromzero.models.heads import SequenceClassifier, SpanQA, TokenClassifier, default_pooling, pool_hidden

FAMILIES = {
    "gpt": ("gpt-char-tiny", {}),
    "bert": ("bert-tiny", {"vocab_size": 200, "dropout": 0.0}),
    "t5": ("t5-tiny", {"vocab_size": 200, "dropout": 0.0}),
}
HEADS = {
    "sequence": lambda b: SequenceClassifier(b, num_labels=3),
    "multi_label": lambda b: SequenceClassifier(b, num_labels=4, problem="multi_label"),
    "regression": lambda b: SequenceClassifier(b, num_labels=1, problem="regression"),
    "token": lambda b: TokenClassifier(b, num_labels=5),
    "qa": lambda b: SpanQA(b),
}
OUT = {"sequence": (2, 3), "multi_label": (2, 4), "regression": (2, 1), "token": (2, 9, 5), "qa": (2, 9, 2)}
PAD = 0


def backbone(family: str) -> nn.Module:
    torch.manual_seed(0)
    name, overrides = FAMILIES[family]
    return create_model(name, **overrides)


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows, right-padded: 9 and 6 real tokens."""
    ids = torch.randint(3, 120, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 9, dtype=torch.long)
    ids[1, 6:], mask[1, 6:] = PAD, 0
    return ids, mask


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("head", list(HEADS))
def test_shapes_and_padding_invariance(family: str, head: str) -> None:
    model = HEADS[head](backbone(family)).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        logits = model(ids, attention_mask=mask)
        alone = model(ids[1:, :6], attention_mask=mask[1:, :6])  # row 1 without its padding
        more = torch.cat([ids, torch.full((2, 4), PAD)], dim=1)  # the same rows with 4 more pads
        longer = model(more, attention_mask=torch.cat([mask, torch.zeros(2, 4, dtype=torch.long)], dim=1))
    assert logits.shape == OUT[head]
    if logits.dim() == 2:  # one vector per sequence
        torch.testing.assert_close(logits[1:], alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(longer, logits, rtol=1e-5, atol=1e-5)
    else:  # per token: compare real positions only
        torch.testing.assert_close(logits[1:, :6], alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(longer[:, :9][mask.bool()], logits[mask.bool()], rtol=1e-5, atol=1e-5)


def test_default_pooling_per_family() -> None:
    assert {f: default_pooling(backbone(f)) for f in FAMILIES} == {"gpt": "last", "bert": "cls", "t5": "mean"}
    assert default_pooling(nn.Linear(2, 2)) == "mean"


def test_bert_cls_pooling_is_bert_pooler_then_classifier() -> None:
    model = SequenceClassifier(backbone("bert"), num_labels=3).eval()
    ids, mask = padded_batch()
    types = torch.zeros_like(ids)
    types[:, 4:] = 1
    with torch.no_grad():
        h = model.backbone.hidden_states(ids, attention_mask=mask, token_type_ids=types)
        pooled = torch.tanh(h[:, 0] @ model.backbone.pooler.weight.T + model.backbone.pooler.bias)
        expected = pooled @ model.head.classifier.weight.T + model.head.classifier.bias
        torch.testing.assert_close(model(ids, attention_mask=mask, token_type_ids=types), expected)


@pytest.mark.parametrize("pooling", ["first", "last", "mean"])
def test_pooling_matches_per_row_loop(pooling: str) -> None:
    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 0]])  # full, right-, both-side padding
    rows = []
    for b in range(3):
        real = [t for t in range(5) if mask[b, t]]
        if pooling == "first":
            rows.append(hidden[b, 0])
        elif pooling == "last":
            rows.append(hidden[b, real[-1]])
        else:
            rows.append(sum(hidden[b, t] for t in real) / len(real))
    torch.testing.assert_close(pool_hidden(hidden, mask, pooling), torch.stack(rows))


def test_t5_head_uses_the_encoder_only() -> None:
    model = TokenClassifier(backbone("t5"), num_labels=2).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        expected = F.linear(model.backbone.encode(ids, mask), model.head.classifier.weight,
                            model.head.classifier.bias)
        torch.testing.assert_close(model(ids, attention_mask=mask), expected)


def test_parameter_names_are_backbone_plus_head() -> None:
    base = backbone("bert")
    base_keys = set(base.state_dict())
    keys = set(SequenceClassifier(base, num_labels=2).state_dict())
    assert keys - {f"backbone.{k}" for k in base_keys} == {"head.classifier.weight", "head.classifier.bias"}
    assert set(SpanQA(backbone("gpt")).state_dict()) >= {"head.qa_outputs.weight", "head.qa_outputs.bias"}


def test_qa_masks_padding_and_bad_inputs_are_rejected() -> None:
    model = SpanQA(backbone("gpt")).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        logits = model(ids, attention_mask=mask)
    assert (logits[1, 6:] == torch.finfo(logits.dtype).min).all()
    with pytest.raises(ValueError, match="has no token types"):
        model(ids, token_type_ids=torch.zeros_like(ids))
    with pytest.raises(TypeError, match="cannot carry a task head"):
        SequenceClassifier(nn.Linear(2, 2), num_labels=2)
    with pytest.raises(ValueError, match="unknown pooling"):
        SequenceClassifier(backbone("gpt"), num_labels=2, pooling="max")


def test_head_dropout_defaults_to_the_backbones() -> None:
    torch.manual_seed(0)
    bert = create_model("bert-tiny", vocab_size=200, dropout=0.25)
    assert SequenceClassifier(bert, 2).head.dropout.p == 0.25
    assert SequenceClassifier(bert, 2, dropout=0.0).head.dropout.p == 0.0


def test_bert_heads_match_hugging_face_head_modules() -> None:
    """Our head layers have HF's names and math: HF's own head modules, given our weights and our backbone's
    hidden states, produce our logits (the backbone's own parity is tested in test_bert.py)."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    ids, mask = padded_batch()
    for ours, hf_cls in [(SequenceClassifier(backbone("bert"), 3), transformers.BertForSequenceClassification),
                         (TokenClassifier(backbone("bert"), 3), transformers.BertForTokenClassification),
                         (SpanQA(backbone("bert")), transformers.BertForQuestionAnswering)]:
        cfg = transformers.BertConfig(vocab_size=200, hidden_size=128, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64, num_labels=2 if isinstance(ours, SpanQA) else 3)
        hf = hf_cls(cfg).eval()
        head = {k.removeprefix("head."): v for k, v in ours.state_dict().items() if k.startswith("head.")}
        assert set(head) <= set(hf.state_dict())  # head.classifier -> classifier, head.qa_outputs -> qa_outputs
        hf.load_state_dict(head, strict=False)
        with torch.no_grad():
            h = ours.backbone.hidden_states(ids, attention_mask=mask)
            if isinstance(ours, SequenceClassifier):
                hf.bert.pooler.dense.load_state_dict(ours.backbone.pooler.state_dict())
                expected = hf.classifier(hf.dropout(hf.bert.pooler(h)))
            elif isinstance(ours, TokenClassifier):
                expected = hf.classifier(hf.dropout(h))
            else:
                expected = hf.qa_outputs(h)
            got = ours.eval()(ids, attention_mask=mask)
        real = mask.bool() if got.dim() == 3 else torch.ones(2, dtype=torch.bool)
        torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-6)
