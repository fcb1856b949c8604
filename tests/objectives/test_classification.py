"""Task objectives against hand-written loss formulas, and smoke fine-tunes of every head with the Trainer."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from fromzero.finetune import FreezeConfig, apply_freeze
from fromzero.finetune.lora import apply_lora, mark_only_lora_trainable
from fromzero.models import create_model
from fromzero.models.heads import SequenceClassifier, SpanQA, TokenClassifier
from fromzero.objectives.classification import SequenceClassification
from fromzero.objectives.span_qa import SpanQA as SpanQAObjective
from fromzero.objectives.token_classification import TokenClassification
from fromzero.train.optim import OptimConfig
from fromzero.train.trainer import TrainConfig, Trainer


class FixedLogits(nn.Module):
    """A 'model' that returns given logits, so the loss can be checked by hand."""

    def __init__(self, logits: torch.Tensor, problem: str = "single_label") -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())
        self.problem = problem

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits


def log_softmax_at(row: list[float], k: int) -> float:
    return row[k] - math.log(sum(math.exp(v) for v in row))


LOGITS = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [1.0, 1.0, 1.0]]
IDS = torch.zeros(4, 3, dtype=torch.long)


def test_cross_entropy_with_class_weights_by_hand() -> None:
    labels, w = [0, 2, 2, 1], [1.0, 2.0, 0.5]
    out = SequenceClassification(class_weights=w)(FixedLogits(torch.tensor(LOGITS)),
                                                  {"input_ids": IDS, "labels": torch.tensor(labels)})
    num = sum(-w[y] * log_softmax_at(row, y) for row, y in zip(LOGITS, labels, strict=True))
    assert out.loss.item() == pytest.approx(num / sum(w[y] for y in labels), rel=1e-6)
    # argmax: 0, 2, 1, 0 (first of a tie) -> right on rows 0 and 1
    assert out.metrics["accuracy"].item() == pytest.approx(0.5)
    assert out.weight == 4
    plain = SequenceClassification()(FixedLogits(torch.tensor(LOGITS)),
                                     {"input_ids": IDS, "labels": torch.tensor(labels)})
    expected = -sum(log_softmax_at(row, y) for row, y in zip(LOGITS, labels, strict=True)) / 4
    assert plain.loss.item() == pytest.approx(expected, rel=1e-6)


def test_multi_label_bce_by_hand() -> None:
    labels = [[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]]
    model = FixedLogits(torch.tensor(LOGITS), problem="multi_label")
    out = SequenceClassification()(model, {"input_ids": IDS, "labels": torch.tensor(labels)})
    total = 0.0
    for row, ys in zip(LOGITS, labels, strict=True):
        for z, y in zip(row, ys, strict=True):
            p = 1 / (1 + math.exp(-z))
            total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
    assert out.loss.item() == pytest.approx(total / 12, rel=1e-6)
    correct = sum((z > 0) == bool(y) for row, ys in zip(LOGITS, labels, strict=True) for z, y in zip(row, ys,
                                                                                                       strict=True))
    assert out.metrics["label_accuracy"].item() == pytest.approx(correct / 12)


def test_regression_mse_by_hand() -> None:
    preds, targets = [0.5, -1.0, 2.0, 0.0], [1.0, -1.0, 0.0, 0.5]
    model = FixedLogits(torch.tensor(preds).unsqueeze(1), problem="regression")
    out = SequenceClassification()(model, {"input_ids": IDS, "labels": torch.tensor(targets)})
    assert out.loss.item() == pytest.approx(sum((p - t) ** 2 for p, t in zip(preds, targets, strict=True)) / 4)
    assert out.metrics["mae"].item() == pytest.approx(sum(abs(p - t) for p, t in zip(preds, targets,
                                                                                     strict=True)) / 4)


def test_token_classification_skips_ignored_positions() -> None:
    logits = torch.tensor([LOGITS[:2], LOGITS[2:]])  # (B=2, T=2, K=3)
    labels = [[0, -100], [1, 2]]
    out = TokenClassification()(FixedLogits(logits), {"input_ids": IDS[:2, :2], "labels": torch.tensor(labels)})
    scored = [(LOGITS[0], 0), (LOGITS[2], 1), (LOGITS[3], 2)]
    assert out.loss.item() == pytest.approx(-sum(log_softmax_at(r, y) for r, y in scored) / 3, rel=1e-6)
    assert out.weight == 3
    assert out.metrics["token_accuracy"].item() == pytest.approx(2 / 3)  # rows 0 and 2 argmax right


def test_span_qa_loss_is_mean_of_start_and_end_cross_entropy() -> None:
    start = [[1.0, 2.0, 0.0], [0.0, 0.0, 5.0]]
    end = [[0.0, 1.0, 3.0], [2.0, 0.0, 0.0]]
    logits = torch.stack([torch.tensor(start), torch.tensor(end)], dim=-1)  # (2, 3, 2)
    batch = {"input_ids": IDS[:2], "start_positions": torch.tensor([1, -100]), "end_positions": torch.tensor([2, 0])}
    out = SpanQAObjective()(FixedLogits(logits), batch)
    expected = -(log_softmax_at(start[0], 1) + log_softmax_at(end[0], 2)) / 2  # row 1 is unanswerable
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.weight == 1 and out.metrics["span_accuracy"].item() == 1.0


# ------------------------------------------------------------------------------------------ smoke runs


class FixedBatches:
    """The same small batch at every step: the head must fit (memorise) it."""

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        self.data = batch

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        return dict(self.data)


def tiny_backbone(family: str) -> nn.Module:
    torch.manual_seed(0)
    if family == "gpt":
        return create_model("gpt-char-tiny")
    if family == "bert":
        return create_model("bert-tiny", vocab_size=200, dropout=0.0)
    return create_model("t5-tiny", vocab_size=200, dropout=0.0)


def task(kind: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 120, (8, 12), generator=gen)
    mask = torch.ones(8, 12, dtype=torch.long)
    mask[4:, 9:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    batch = {"input_ids": ids, "attention_mask": mask}
    if kind == "single_label":
        batch["labels"] = torch.randint(0, 3, (8,), generator=gen)
    elif kind == "multi_label":
        batch["labels"] = torch.randint(0, 2, (8, 4), generator=gen)
    elif kind == "regression":
        batch["labels"] = torch.randn(8, generator=gen)
    elif kind == "token":
        batch["labels"] = torch.randint(0, 5, (8, 12), generator=gen).masked_fill(mask == 0, -100)
    else:
        batch["start_positions"] = torch.randint(0, 4, (8,), generator=gen)
        batch["end_positions"] = batch["start_positions"] + torch.randint(0, 5, (8,), generator=gen)
    return batch


SMOKE = [  # (head kind, family, method)
    ("single_label", "bert", "full"), ("multi_label", "gpt", "full"), ("regression", "t5", "full"),
    ("token", "bert", "full"), ("qa", "gpt", "full"), ("single_label", "bert", "lora"),
    ("token", "t5", "freeze"),
]


def build(kind: str, family: str) -> tuple[nn.Module, object]:
    b = tiny_backbone(family)
    if kind in ("single_label", "multi_label", "regression"):
        n = {"single_label": 3, "multi_label": 4, "regression": 1}[kind]
        return SequenceClassifier(b, n, problem=kind, dropout=0.0), SequenceClassification()
    if kind == "token":
        return TokenClassifier(b, 5, dropout=0.0), TokenClassification()
    return SpanQA(b), SpanQAObjective()


@pytest.mark.parametrize(("kind", "family", "method"), SMOKE)
def test_smoke_fine_tune_loss_falls(kind: str, family: str, method: str, tmp_path) -> None:
    model, objective = build(kind, family)
    if method == "lora":
        apply_lora(model, ["*attn.qkv", "*attn.proj"], rank=4, alpha=8)
        mark_only_lora_trainable(model, extra=["head.*"])
    elif method == "freeze":
        apply_freeze(model, FreezeConfig(embeddings=True, first_n_blocks=1))
    batch = task(kind, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.eval()
        before = objective(model, batch).loss.item()
    cfg = TrainConfig(max_steps=30, batch_size=8, threads=1, log_every=30, eval_every=0, ckpt_every=0,
                      device="cpu")
    optim = OptimConfig(lr=1e-2 if method == "lora" else 3e-3, warmup_steps=0, schedule="constant")
    Trainer(model, objective, FixedBatches(batch), None, cfg, optim, tmp_path, progress=False).fit()
    with torch.no_grad():
        model.eval()
        after = objective(model, batch).loss.item()
    assert after < 0.5 * before, (before, after)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["step"] == 30


def test_files_to_trainer_end_to_end(tmp_path) -> None:
    """JSONL and CoNLL files -> readers -> features -> TaskBatches -> heads -> Trainer: the pieces fit."""
    from fromzero.data.task_data import encode_labels, label_vocab, read_conll, read_text_classification, tag_vocab
    from fromzero.data.task_encoding import Framing, TaskBatches, encode_classification, encode_tagging
    from fromzero.data.tokenizers import TokenizerConfig, train_tokenizer

    rows = [("a great film", "pos"), ("awful and dull", "neg"), ("great fun", "pos"), ("dull plot", "neg")]
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in rows), encoding="utf-8")
    conll = tmp_path / "ner.txt"
    conll.write_text("Ada B-PER\nwrote O\n\nin O\nParis B-LOC\n", encoding="utf-8")
    tok = train_tokenizer([t for t, _ in rows] + ["Ada wrote in Paris"], TokenizerConfig(kind="wordpiece",
                                                                                           vocab_size=120))
    framing = Framing.for_tokenizer(tok)
    examples = read_text_classification(jsonl)
    vocab = label_vocab(examples)
    feats = encode_classification(examples, tok, framing, 16, encode_labels(examples, vocab))
    sentences = read_conll(conll)
    tags = tag_vocab(sentences)
    tag_feats = encode_tagging(sentences, tok, framing, 16, tags)
    torch.manual_seed(0)
    cfg = TrainConfig(max_steps=20, batch_size=4, threads=1, log_every=20, eval_every=0, ckpt_every=0, device="cpu")
    optim = OptimConfig(lr=3e-3, warmup_steps=0, schedule="constant")
    for model, objective, data in [
        (SequenceClassifier(create_model("bert-tiny", vocab_size=tok.vocab_size, dropout=0.0), len(vocab)),
         SequenceClassification(), TaskBatches(feats, 4, pad_id=framing.pad_id)),
        (TokenClassifier(create_model("bert-tiny", vocab_size=tok.vocab_size, dropout=0.0), len(tags)),
         TokenClassification(), TaskBatches(tag_feats, 2, pad_id=framing.pad_id)),
    ]:
        batch = data.batch(0)
        before = objective(model.eval(), batch).loss.item()
        Trainer(model, objective, data, None, cfg, optim, tmp_path / type(model).__name__, progress=False).fit()
        assert objective(model.eval(), batch).loss.item() < 0.5 * before
