"""Starting an image model from another image run's weights: fine-tuning after pretraining.

Two cases: an MAE run's encoder (``vit-mae``) into a ``vit`` classifier of the same shape, the image
version of BERT pretraining then fine-tuning; or a run of the same family (e.g. a classifier trained on
other classes). Every tensor whose name and shape match is copied; the rest (the new task head) keeps its
fresh initialisation. Anything else that does not match is an error: it would silently train from scratch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fromzero.errors import ConfigError
from fromzero.runs import load_run

HEAD_PREFIXES = ("classifier.", "head.", "fc.")  # task heads: re-initialised when the class count differs


@torch.no_grad()
def load_init_weights(model: nn.Module, init_dir: str, file: str) -> dict[str, Any]:
    """Copy ``init_dir``'s matching weights into ``model``; returns what was loaded (for vision.json)."""
    run = load_run(init_dir)
    source = run.model.encoder if run.kind == "mae" else run.model
    src, own = source.state_dict(), model.state_dict()
    copied, skipped = [], []
    for name, tensor in own.items():
        if name in src and src[name].shape == tensor.shape:
            tensor.copy_(src[name])
            copied.append(name)
        else:
            skipped.append(name)
    not_head = [n for n in skipped if not n.startswith(HEAD_PREFIXES)]
    if not copied or not_head:
        what = f"{len(not_head)} tensors outside the head, e.g. {not_head[:3]}" if not_head else "nothing"
        raise ConfigError(f"{file}: init: {init_dir} ({run.kind}, {type(source).__name__}) does not fit this "
                          f"model: {what} would stay untrained; give the model the same shape as the init run")
    return {"run": str(init_dir), "kind": run.kind, "tensors_loaded": len(copied), "reinitialised": skipped}
