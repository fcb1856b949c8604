"""What an exported ONNX graph computes for each run kind: a module of plain int64 tensors in, one tensor out.

    family / kind                                  inputs (all int64)                          output
    gpt  pretrained | sft                          input_ids (B, T)                            logits (B, T, V)
    bert pretrained, with an MLM head              input_ids, attention_mask, token_type_ids  logits (B, T, V)
    bert pretrained, without one (HF BertModel)    input_ids, attention_mask, token_type_ids  hidden_states (B, T, C)
    t5   pretrained | seq2seq                      input_ids, attention_mask (B, S),           logits (B, T, V)
                                                   decoder_input_ids (B, T)
    any  sequence_classification                   input_ids, attention_mask (+ token_type_ids logits (B, num_labels)
    any  token_classification                        for a BERT backbone)                      logits (B, T, num_labels)
    any  span_qa                                                                               logits (B, T, 2)

B and every sequence axis are dynamic. The GPT language model and the T5 decoder are given an all-ones
attention mask inside the graph: with a mask, ``nn.attention.SelfAttention`` takes its explicit-mask path,
whose shapes are traced as tensors; without one it decides ``is_causal`` from the sequence length in Python,
which tracing would freeze (and torch.export cannot turn into a bool). The result is the same causal
attention. T5 is exported without a KV cache: each call runs the encoder and the whole decoder prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fromzero.errors import ConfigError
from fromzero.models.heads import SequenceClassifier, SpanQA, TokenClassifier

HEAD_KINDS = ("sequence_classification", "token_classification", "span_qa")
FAMILIES = ("gpt", "bert", "t5")


@dataclass(frozen=True)
class GraphSignature:
    """Names of the graph's inputs and output, and the output's axes (a name = dynamic, an int = fixed)."""

    inputs: tuple[str, ...]
    output: str
    output_axes: tuple[str | int, ...]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """torch.onnx.export's ``dynamic_axes``: batch and sequence axes of every input and the output."""
        axes = {name: {0: "batch", 1: "decoder_sequence" if name.startswith("decoder") else "sequence"}
                for name in self.inputs}
        axes[self.output] = {i: a for i, a in enumerate(self.output_axes) if isinstance(a, str)}
        return axes


def _signature(model: nn.Module, family: str, width: int) -> GraphSignature:
    """The signature of a run's model (``width``: the last axis of the output)."""
    segments = ("token_type_ids",) if family == "bert" else ()
    if isinstance(model, SequenceClassifier):
        return GraphSignature(("input_ids", "attention_mask", *segments), "logits", ("batch", width))
    if isinstance(model, (TokenClassifier, SpanQA)):
        return GraphSignature(("input_ids", "attention_mask", *segments), "logits", ("batch", "sequence", width))
    if family == "gpt":
        return GraphSignature(("input_ids",), "logits", ("batch", "sequence", width))
    if family == "t5":
        return GraphSignature(("input_ids", "attention_mask", "decoder_input_ids"), "logits",
                              ("batch", "decoder_sequence", width))
    output = "logits" if getattr(model, "mlm_head", None) is not None else "hidden_states"
    return GraphSignature(("input_ids", "attention_mask", "token_type_ids"), output, ("batch", "sequence", width))


class OnnxGraph(nn.Module):
    """A run's model behind a forward of positional int64 tensors (``signature.inputs``, in order) returning
    one tensor, so the traced graph has named inputs and outputs; see the module docstring for the table."""

    def __init__(self, model: nn.Module, family: str, kind: str) -> None:
        super().__init__()
        if family not in FAMILIES:
            raise ConfigError(f"export-onnx supports {', '.join(FAMILIES)} runs; this run's model family is "
                              f"{family!r}")
        self.model, self.family, self.kind = model, family, kind
        self.head = isinstance(model, (SequenceClassifier, TokenClassifier, SpanQA))
        self.signature = _signature(model, family, self._width())
        self.eval()

    def _width(self) -> int:
        """Size of the output's last axis: labels, 2 (QA), vocabulary or model width."""
        if isinstance(self.model, SpanQA):
            return 2
        if self.head:
            return self.model.num_labels
        cfg = self.model.config
        if self.family == "bert" and getattr(self.model, "mlm_head", None) is None:
            return cfg.n_embd
        return cfg.vocab_size

    @property
    def vocab_size(self) -> int:
        """Token ids the graph accepts: 0 .. vocab_size - 1."""
        backbone = self.model.backbone if self.head else self.model
        return backbone.config.vocab_size

    @property
    def max_len(self) -> int | None:
        """Longest sequence the model's learned positions cover (None: T5, relative positions only)."""
        backbone = self.model.backbone if self.head else self.model
        if self.family == "gpt":
            return backbone.config.block_size
        return backbone.config.max_positions if self.family == "bert" else None

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        """The signature's inputs, in order -> its output."""
        x = dict(zip(self.signature.inputs, tensors, strict=True))
        ids, mask = x["input_ids"], x.get("attention_mask")
        segments = {"token_type_ids": x["token_type_ids"]} if "token_type_ids" in x else {}
        if self.head:
            return self.model(ids, attention_mask=mask, **segments)  # (B, K) or (B, T, K)
        if self.family == "gpt":
            return self.model(ids, attention_mask=torch.ones_like(ids))  # (B, T, V)
        if self.family == "t5":
            dec = x["decoder_input_ids"]
            return self.model(ids, attention_mask=mask, decoder_input_ids=dec,
                              decoder_attention_mask=torch.ones_like(dec))  # (B, T, V)
        hidden = self.model(ids, attention_mask=mask, **segments)  # (B, T, C)
        return self.model.mlm_logits(hidden) if self.signature.output == "logits" else hidden


def example_inputs(graph: OnnxGraph, batch: int, seq: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random int64 inputs for ``graph``: ids below its vocabulary, right padding (row 0 full, the others of
    random real lengths >= 1), two segments split at the middle, a decoder prefix of about half ``seq``."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, seq + 1, (batch,), generator=gen)
    lengths[0] = seq
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()  # (B, T)
    out = {}
    for name in graph.signature.inputs:
        if name == "input_ids":
            out[name] = torch.randint(0, graph.vocab_size, (batch, seq), generator=gen) * mask
        elif name == "attention_mask":
            out[name] = mask
        elif name == "token_type_ids":
            out[name] = (torch.arange(seq)[None, :] >= seq // 2).long().expand(batch, seq) * mask
        else:  # decoder_input_ids
            out[name] = torch.randint(0, graph.vocab_size, (batch, max(1, seq // 2 + 1)), generator=gen)
    return out
