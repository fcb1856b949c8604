"""What each layer of a model sees on calibration batches: its inputs, one row per real (non-padding) token.

Activation-aware pruning scores a weight by the inputs that flow through it (Wanda's ||X_j||_2, a head's
or neuron's mean contribution). Forward hooks on the chosen modules hand each call's input, flattened to
(tokens, features), to a visitor; padding positions are dropped when the batch's mask matches the input's
(B, T) shape, so padded batches weigh only real tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fromzero.progress import progress

Forward = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
Visitor = Callable[[str, torch.Tensor], None]  # (module name, inputs (N, features))


def _mask_keys(name: str) -> tuple[str, ...]:
    """Which of a batch's masks covers a module's input positions: the decoder's for a decoder layer
    (except cross-attention's keys/values, which read the encoder's memory), else the input mask."""
    in_decoder = name.startswith("decoder.") or ".decoder." in name
    if in_decoder and not name.endswith("cross_attn.kv"):
        return ("decoder_attention_mask",)
    return ("attention_mask",)


def real_tokens(x: torch.Tensor, batch: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """x (B, T, F) -> (N, F): the rows of real tokens (all rows when no mask fits x's (B, T))."""
    rows = x.reshape(-1, x.shape[-1])
    for key in _mask_keys(name):
        mask = batch.get(key)
        if mask is not None and tuple(mask.shape) == tuple(x.shape[:-1]):
            return rows[mask.reshape(-1).to(rows.device).bool()]
    return rows


def visit_inputs(model: nn.Module, modules: dict[str, nn.Module], batches: list[dict[str, torch.Tensor]],
                 forward: Forward, visit: Visitor, what: str = "calibration") -> None:
    """Run ``forward(model, batch)`` on every batch (no gradients) and call ``visit(name, inputs)`` with
    each listed module's input rows (float32, real tokens only)."""
    current: dict[str, dict[str, torch.Tensor]] = {}

    def hook_for(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            visit(name, real_tokens(args[0].detach().float(), current["batch"], name))
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in modules.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in progress(batches, desc=what, unit="batch"):
                current["batch"] = batch
                forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
