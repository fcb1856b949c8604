"""What a model costs: parameters, FLOPs per token, and training memory (estimates).

FLOPs per token (Kaplan et al. 2020 for 2N; the 4*L*T*C attention term as counted
in the PaLM paper, Chowdhery et al. 2022, appendix B), for context T:
    forward  = 2 * (weights of all matmuls, incl. the output projection) + 4 * L * T * C
    training = 3 * forward        (the backward pass costs about twice the forward)
Training memory with AdamW in fp32: 4 (weights) + 4 (grads) + 8 (two moments)
bytes per trainable parameter, plus activations kept for the backward pass
(Korthikanti et al. 2022: about s*b*h*(34 + 5*a*s/h) bytes per layer at 16 bits;
doubled for fp32) plus the logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fromzero.models import build_model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Unique parameters (tied weights counted once), total and without embeddings."""
    seen, total, embed, trainable = set(), 0, 0, 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
            if isinstance(module, nn.Embedding) or type(module).__name__ == "LearnedPositions":
                embed += p.numel()
    return {"total": total, "trainable": trainable, "non_embedding": total - embed}


def cost_estimate(model_cfg: Any, seq_len: int | None = None, batch_size: int = 1,
             precision: str = "fp32") -> dict[str, Any]:
    """Parameter counts, FLOPs per token and training memory for a model config."""
    with torch.device("meta"):  # no memory is allocated, so gpt2-medium is as cheap as a toy
        model = build_model(model_cfg)
    T = seq_len or getattr(model_cfg, "block_size", None) or getattr(model_cfg, "max_positions", 1)
    L = getattr(model_cfg, "n_layer", 0)
    if hasattr(model_cfg, "n_decoder_layer"):  # encoder-decoder: count both stacks
        L += model_cfg.n_decoder_layer or model_cfg.n_layer
    C = getattr(model_cfg, "n_embd", None) or getattr(model_cfg, "d_model", 1)
    H, V = getattr(model_cfg, "n_head", 1), getattr(model_cfg, "vocab_size", 0)
    params = count_parameters(model)
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    fwd = 2 * matmul + 4 * L * T * C
    act_bytes = 2 if precision == "bf16" else 4
    per_layer = T * batch_size * C * (34 + 5 * H * T / C) * act_bytes / 2
    activations = L * per_layer + 3 * batch_size * T * V * 4  # logits, softmax and their grad in fp32
    states = 16 * params["trainable"]
    return {
        "parameters": params,
        "flops_per_token": {"forward": fwd, "training": 3 * fwd},
        "memory_bytes": {"weights_grads_adamw": states, "activations": int(activations),
                         "total": int(states + activations)},
        "assumptions": {"seq_len": T, "batch_size": batch_size, "precision": precision,
                        "optimizer": "AdamW", "activation_recompute": False},
    }


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'; bytes with unit 'B' use powers of 1024."""
    base, names = (1024.0, ["", "Ki", "Mi", "Gi", "Ti"]) if unit == "B" else (1000.0, ["", "K", "M", "G", "T"])
    for name in names:
        if abs(n) < base or name == names[-1]:
            return f"{n:.3g}{name}{unit}" if name else f"{n:.0f}{unit}"
        n /= base
    return f"{n}{unit}"
