"""Partial fine-tuning: choose which parameters train by name, for any model family.

Freezing sets ``requires_grad = False``; the optimizer (``train/optim.py``)
only receives trainable parameters, so frozen ones never change, not even
by weight decay. Selection is by parameter name, so it works on every
family and on a task head wrapping one (names then start with ``backbone.``):

    embeddings       any name with a component tok_emb, pos_emb, type_emb or emb_norm
                     (GPT/BERT/T5 token embeddings, learned positions, BERT segments and
                     embedding LayerNorm). T5's relative position bias lives in each stack
                     (``encoder.rel_bias``); freeze it with ``frozen: ["*rel_bias*"]``.
                     A tied output projection (GPT ``lm_head``) is the same tensor, so it
                     freezes with the embedding.
    first_n_blocks   ``<stack>blocks.i.`` for i < N in every stack: ``blocks`` (GPT, BERT),
                     ``encoder.blocks`` and ``decoder.blocks`` (T5)
    head_only        everything outside ``head.`` (the task head of fromzero.models.heads)
    trainable        globs: everything not matching one of them is frozen
    frozen           globs: matching parameters are frozen

:func:`apply_freeze` only ever turns ``requires_grad`` off, so it composes
with LoRA's ``mark_only_lora_trainable`` in either order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from fromzero.config import field, require
from fromzero.errors import ConfigError
from fromzero.finetune.name_patterns import example_names, matches_any, matching

EMBEDDING_NAMES = ("tok_emb", "pos_emb", "type_emb", "emb_norm")
_EMBEDDING = re.compile(r"(^|\.)(" + "|".join(EMBEDDING_NAMES) + r")\.")
_BLOCK = re.compile(r"^(.*?)blocks\.(\d+)\.")  # group 1: the stack prefix, e.g. "backbone.encoder."
HEAD_PATTERN = "head.*"


@dataclass(frozen=True)
class FreezeConfig:
    """Which parameters to freeze (the ``freeze:`` section of a fine-tuning recipe)."""

    embeddings: bool = field(False, help="freeze token, position and segment embeddings and the embedding norm")
    first_n_blocks: int = field(0, help="freeze the first N blocks of every stack (T5: encoder and decoder)")
    head_only: bool = field(False, help="train only the task head (parameters under 'head.')")
    trainable: list[str] = field([], help="glob patterns of parameter names to keep trainable; all others freeze")
    frozen: list[str] = field([], help="glob patterns of parameter names to freeze")

    def __post_init__(self) -> None:
        require(self.first_n_blocks >= 0, "first_n_blocks", f"must be >= 0, got {self.first_n_blocks}")

    @property
    def active(self) -> bool:
        """True if this config freezes anything."""
        return bool(self.embeddings or self.first_n_blocks or self.head_only or self.trainable or self.frozen)


@dataclass(frozen=True)
class TrainableSummary:
    """Parameter counts (tied tensors counted once) and the names of frozen parameters."""

    trainable: int
    total: int
    frozen_names: tuple[str, ...] = ()

    @property
    def percent(self) -> float:
        """Trainable share of all parameters, in percent."""
        return 100.0 * self.trainable / max(self.total, 1)

    def __str__(self) -> str:
        return f"trainable parameters: {self.trainable:,} of {self.total:,} ({self.percent:.2f}%)"


def trainable_summary(model: nn.Module) -> TrainableSummary:
    """Count trainable and total parameters of ``model`` (``named_parameters`` already skips tied duplicates)."""
    params = dict(model.named_parameters())
    trainable = sum(p.numel() for p in params.values() if p.requires_grad)
    total = sum(p.numel() for p in params.values())
    frozen = tuple(n for n, p in params.items() if not p.requires_grad)
    return TrainableSummary(trainable, total, frozen)


def _first_blocks(names: Sequence[str], n: int) -> list[str]:
    """Names inside blocks 0..n-1 of every stack; a stack with fewer than n blocks is an error."""
    stacks: dict[str, int] = {}
    for name in names:
        m = _BLOCK.match(name)
        if m:
            stacks[m.group(1)] = max(stacks.get(m.group(1), 0), int(m.group(2)) + 1)
    if not stacks:
        raise ConfigError(f"freeze.first_n_blocks: the model has no 'blocks.<i>.' parameters (names look like "
                          f"{example_names(names)}); set it to 0")
    for prefix, count in stacks.items():
        if n > count:
            raise ConfigError(f"freeze.first_n_blocks: {n} exceeds the {count} blocks of '{prefix}blocks'; "
                              f"choose at most {count}")
    return [name for name in names if (m := _BLOCK.match(name)) and int(m.group(2)) < n]


def frozen_names(model: nn.Module, cfg: FreezeConfig) -> list[str]:
    """The parameter names ``cfg`` freezes on ``model`` (checks every rule matches something)."""
    names = [n for n, _ in model.named_parameters()]
    freeze: set[str] = set()
    if cfg.embeddings:
        hits = [n for n in names if _EMBEDDING.search(n)]
        if not hits:
            raise ConfigError(f"freeze.embeddings: the model has no parameter under {', '.join(EMBEDDING_NAMES)}; "
                              "set it to false or list names in freeze.frozen")
        freeze.update(hits)
    if cfg.first_n_blocks:
        freeze.update(_first_blocks(names, cfg.first_n_blocks))
    keep_patterns = list(cfg.trainable)
    if cfg.head_only:
        if not any(matches_any(n, [HEAD_PATTERN]) for n in names):
            raise ConfigError("freeze.head_only: the model has no 'head.' parameters; wrap the backbone in a task "
                              "head (fromzero.models.heads) or use freeze.trainable")
        keep_patterns.append(HEAD_PATTERN)
    if keep_patterns:
        keep = matching(names, keep_patterns, "freeze.trainable")
        freeze.update(n for n in names if n not in keep)
    freeze.update(matching(names, cfg.frozen, "freeze.frozen"))
    return [n for n in names if n in freeze]


def apply_freeze(model: nn.Module, cfg: FreezeConfig) -> TrainableSummary:
    """Freeze what ``cfg`` selects (never unfreezes anything) and return the resulting parameter counts."""
    params = dict(model.named_parameters())
    for name in frozen_names(model, cfg):
        params[name].requires_grad_(False)
    return trainable_summary(model)
