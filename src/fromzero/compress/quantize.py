"""Quantize a model's linear layers (``fromzero compress quantize``): dynamic int8, weight-only int8 / int4.

Which layers: every ``nn.Linear`` except those whose module name matches a ``keep_float`` glob (fnmatch,
e.g. ``blocks.0.*``, ``*.mlp.*``) and those whose weight is shared with another module (a tied LM head is
the token embedding: quantizing it would untie it or quantize the embedding too, so it stays float).
Embeddings and norms are not linear layers and always stay float. The default keep-float list is the
output layers, which are small or tied and whose errors go straight into the logits:

    *lm_head            GPT / T5 language-model head (tied to tok_emb by default anyway)
    *mlm_head.decoder   BERT masked-LM decoder (tied to tok_emb)
    *nsp_head           BERT next-sentence head
    head.*              task heads of fine-tuned runs: head.classifier, head.qa_outputs

Rounding: ``rtn`` (round to nearest, :mod:`fromzero.nn.quantized_linear`) or ``gptq``
(:mod:`fromzero.compress.gptq`, calibrated on the run's own validation batches). The math and the saved
layout are in :mod:`fromzero.nn.quantized_linear`; a quantized run reloads through
:func:`fromzero.runs.load_run` (``runs.compression.restore_structure`` swaps the layers back in).
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fromzero.compress.calibration import calibration_batches, forward
from fromzero.compress.gptq import collect_hessians, gptq_quantize
from fromzero.compress.layer_inputs import Forward
from fromzero.compress.run_output import check_output, write_compressed_run
from fromzero.errors import ConfigError
from fromzero.nn.quantized_linear import MODES, Q_MAX, QuantizedLinear, check_mode, replace_module
from fromzero.progress import silenced
from fromzero.runs import load_run
from fromzero.runs.compression import quantized_step

DEFAULT_KEEP_FLOAT: tuple[str, ...] = ("*lm_head", "*mlm_head.decoder", "*nsp_head", "head.*")
DEFAULT_GROUP_SIZE = {"weight-int4": 128}  # other modes: one scale per output channel
ROUNDINGS = ("rtn", "gptq")


@dataclass
class QuantizeReport:
    """What ``quantize_run`` did and how much it changed the model."""

    out: Path
    step: dict[str, Any]  # the compression.json step
    modules: list[str]  # linear layers quantized
    kept_float: list[str]  # linear layers left in float (keep-float globs, tied weights)
    bytes_before: int  # weights file of the source run
    bytes_after: int  # model.safetensors of the output
    max_logits_diff: float | None = None  # max |float - quantized| logit over the calibration batches
    calibration_batches: int = 0
    notes: list[str] = field(default_factory=list)


def _tied_linears(model: nn.Module) -> set[str]:
    """Linear layers whose weight Parameter another module also holds (tied to an embedding, say)."""
    owners: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        for p in module.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    return {name for name, m in model.named_modules() if isinstance(m, nn.Linear) and owners[id(m.weight)] > 1}


def select_linears(model: nn.Module, keep_float: Sequence[str]) -> tuple[dict[str, nn.Linear], list[str]]:
    """(linear layers to quantize by name, names kept float). A glob that matches no linear layer is a
    one-line ConfigError naming it and a few real names (the default globs, written for every family, may
    match nothing)."""
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    if not linears:
        raise ConfigError("the model has no linear layers to quantize")
    for pattern in keep_float:
        if pattern not in DEFAULT_KEEP_FLOAT and not any(fnmatch.fnmatchcase(name, pattern) for name in linears):
            some = ", ".join(list(linears)[:4])
            raise ConfigError(f"--keep-float: pattern {pattern!r} matches no linear layer; names look like "
                              f"{some} (globs over these, comma-separated)")
    tied = _tied_linears(model)
    kept = [n for n in linears if n in tied or any(fnmatch.fnmatchcase(n, p) for p in keep_float)]
    chosen = {n: m for n, m in linears.items() if n not in kept}
    if not chosen:
        raise ConfigError(f"--keep-float: keeps every linear layer float ({', '.join(kept[:4])}, ...); nothing "
                          "left to quantize: narrow the patterns")
    return chosen, kept


def _check_options(mode: str, group_size: int | None, rounding: str, chosen: dict[str, nn.Linear],
                   calibration: list[dict[str, torch.Tensor]] | None) -> None:
    if mode not in MODES:
        raise ConfigError(f"--mode: unknown quantization mode {mode!r}; choose one of {', '.join(MODES)}")
    if rounding not in ROUNDINGS:
        raise ConfigError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    for name, linear in chosen.items():
        check_mode(mode, linear.in_features, group_size, where=name)
    if rounding == "gptq" and not calibration:
        raise ConfigError("--gptq: GPTQ needs calibration inputs; pass --calibration N with N >= 1")


@torch.no_grad()
def quantize_model(model: nn.Module, mode: str, *, group_size: int | None = None,
                   keep_float: Sequence[str] = DEFAULT_KEEP_FLOAT, rounding: str = "rtn",
                   calibration: list[dict[str, torch.Tensor]] | None = None, forward_fn: Forward = forward
                   ) -> list[str]:
    """Replace the chosen linear layers of ``model`` (in place) by :class:`QuantizedLinear`; returns their
    names. ``group_size`` None = one scale per output channel. ``rounding="gptq"`` needs ``calibration``
    batches, run through the float model with ``forward_fn(model, batch)``. Everything is checked before
    the first layer changes."""
    chosen, _ = select_linears(model, keep_float)
    _check_options(mode, group_size, rounding, chosen, calibration)
    hessians = collect_hessians(model, chosen, calibration or [], forward_fn) if rounding == "gptq" else {}
    for name, linear in chosen.items():
        weight_q = scales = None
        if name in hessians:
            weight_q, scales = gptq_quantize(linear.weight, hessians[name], Q_MAX[mode], group_size)
        replace_module(model, name, QuantizedLinear.from_linear(linear, mode, group_size, weight_q=weight_q,
                                                                scales=scales))
    return list(chosen)


@torch.no_grad()
def max_logits_diff(reference: nn.Module, model: nn.Module, batches: list[dict[str, torch.Tensor]],
                    forward_fn: Forward = forward) -> float | None:
    """max |reference logits - model logits| over ``batches`` (None without batches)."""
    if not batches:
        return None
    reference.eval()
    model.eval()
    return max(float((forward_fn(reference, b).float() - forward_fn(model, b).float()).abs().max()) for b in batches)


def resolve_group_size(mode: str, group_size: int | None) -> int | None:
    """The CLI's ``--group-size``: None = the mode's default (128 for int4, per channel otherwise); 0 = per
    channel."""
    if group_size is None:
        return DEFAULT_GROUP_SIZE.get(mode)
    if group_size < 0:
        raise ConfigError(f"--group-size: must be >= 1 (or 0 for one scale per output channel), got {group_size}")
    return group_size or None


def _size(path: Path | None) -> int:
    return path.stat().st_size if path is not None and path.is_file() else 0


def quantize_run(run_dir: str | Path, out: str | Path, *, mode: str, group_size: int | None = None,
                 keep_float: Sequence[str] | None = None, calibration: int = 0, gptq: bool = False,
                 progress: bool = True) -> QuantizeReport:
    """Quantize the run at ``run_dir`` into a new run directory ``out`` (see the module docstring).

    ``group_size``: see :func:`resolve_group_size`. ``keep_float`` None = :data:`DEFAULT_KEEP_FLOAT`; given
    patterns replace the default and must each match a linear layer. ``calibration`` validation batches
    feed GPTQ (``gptq=True`` needs >= 1) and the reported max logits difference.
    """
    if mode not in MODES:
        raise ConfigError(f"--mode: unknown quantization mode {mode!r}; choose one of {', '.join(MODES)}")
    if calibration < 0:
        raise ConfigError(f"--calibration: must be >= 0, got {calibration}")
    if gptq and calibration < 1:
        raise ConfigError("--gptq: GPTQ needs calibration inputs; pass --calibration N with N >= 1")
    groups = resolve_group_size(mode, group_size)
    out = check_output(out)
    with contextlib.nullcontext() if progress else silenced():
        source = load_run(run_dir)
        source.require_text("compress quantize")
        done = quantized_step(source.compression)
        if done is not None:
            raise ConfigError(f"{source.path}: is already quantized ({done.get('mode')}); quantize its float "
                              f"source run instead ({(source.compression or {}).get('source', 'the original')})")
        model = source.model
        patterns = DEFAULT_KEEP_FLOAT if keep_float is None else tuple(keep_float)
        chosen, kept = select_linears(model, patterns)
        _check_options(mode, groups, "gptq" if gptq else "rtn", chosen, [{}] if gptq else None)
        batches = calibration_batches(source, calibration) if calibration else []
        reference = copy.deepcopy(model) if batches else None
        names = quantize_model(model, mode, group_size=groups, keep_float=patterns,
                               rounding="gptq" if gptq else "rtn", calibration=batches)
        diff = max_logits_diff(reference, model, batches) if reference is not None else None
    step = {"op": "quantize", "mode": mode, "group_size": groups, "rounding": "gptq" if gptq else "rtn",
            "keep_float": list(patterns), "modules": names, "calibration": len(batches)}
    write_compressed_run(source, out, model, step)
    tied = sorted(n for n in _tied_linears(model) & set(kept) if not any(fnmatch.fnmatchcase(n, p) for p in patterns))
    notes = [f"kept float because its weight is tied to another module: {', '.join(tied)}"] if tied else []
    return QuantizeReport(out, step, names, kept, _size(source.weights), _size(out / "model.safetensors"),
                          diff, len(batches), notes)
