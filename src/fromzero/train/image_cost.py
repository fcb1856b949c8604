"""What an image model costs per image: parameters and multiply-accumulate FLOPs, counted on a real forward.

    conv   2 * H_out * W_out * C_out * (C_in / groups) * k_h * k_w      (bias ignored)
    linear 2 * (output elements / batch) * in_features                  (also the per-patch MLPs of a ViT)
    attention (ViT) 4 * L * T * C for T tokens of width C over L blocks (scores and the weighted sum)
    training = 3 * forward

Counted with forward hooks on one image of the given size, so every branch the model takes (detectors'
heads, U-Net skips, MAE's masking) counts what it really computes. Text models use ``cost_estimate``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fromzero.models import build_model
from fromzero.train.cost_estimate import count_parameters


def _hook(total: list[int]):
    def count(module: nn.Module, inputs: tuple, output: Any) -> None:
        out = output if isinstance(output, torch.Tensor) else None
        if out is None:
            return
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            kh, kw = module.kernel_size
            per = module.in_channels // module.groups * kh * kw
            if isinstance(module, nn.ConvTranspose2d):  # each input pixel scatters into k*k outputs
                total[0] += 2 * inputs[0][0].numel() * module.out_channels // module.groups * kh * kw
                return
            total[0] += 2 * out[0].numel() * per
        elif isinstance(module, nn.Linear):
            total[0] += 2 * (out.numel() // out.shape[0]) * module.in_features
    return count


@torch.no_grad()
def image_cost(config: Any, image_size: int | None = None) -> dict[str, Any]:
    """Parameters and FLOPs per image (forward, training) of an image family config, at ``image_size``
    (default: the config's ``image_size``, else 64)."""
    size = image_size or getattr(config, "image_size", None) or 64
    model = build_model(config).eval()
    total = [0]
    handles = [m.register_forward_hook(_hook(total)) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)]
    x = torch.zeros(1, config.in_channels, size, size)
    try:
        if hasattr(model, "num_patches"):  # MAE: a masking noise per patch
            model(x, torch.rand(1, model.num_patches))
        else:
            model(x)
    finally:
        for h in handles:
            h.remove()
    fwd = total[0]
    n_layer = getattr(config, "n_layer", 0)
    if n_layer and hasattr(config, "patch_size"):  # a ViT: attention scores and weighted sums
        tokens = (size // config.patch_size) ** 2 + 1
        fwd += 4 * n_layer * tokens * tokens * config.n_embd
    return {"parameters": count_parameters(model), "image_size": size,
            "flops_per_image": {"forward": fwd, "training": 3 * fwd}}
