"""Continued pretraining (domain-adaptive): a pretraining recipe with ``init: RUN_DIR``.

``init`` starts from that run's weights and tokenizer instead of a random model and a new tokenizer.
The model section then comes from the run (a recipe may only override fields
that leave the weights' shapes alone, such as dropout), the objective
defaults to the run's own (name and settings; a recipe may override
settings), and ``data.tokenizer`` is not allowed: the new text is encoded with
the run's tokenizer, so the embeddings keep their meaning. The output is an
ordinary run directory, so ``fromzero finetune`` can start from it.

    init: runs/bert_zh                                   # any run directory, pretrained or imported
    data: {inputs: [runs/data/chinese-reviews/train_text.jsonl]}
    train: {max_steps: 400}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from fromzero.config import load_yaml
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import CheckpointError, ConfigError
from fromzero.runs import find_weights, load_weights

# Model fields a continued run may change: they leave every weight's shape as it is.
CONTINUED_MODEL_OVERRIDES = ("dropout", "attn_dropout")


def continued_recipe_data(data: dict[str, Any], file: str) -> dict[str, Any]:
    """Fill ``model`` and ``objective`` from the ``init`` run (see the module docstring)."""
    init = Path(str(data["init"]))
    config_path = init / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"{file}: init: {init} is not a run directory (no config.yaml); pass a folder written "
                          "by `fromzero pretrain` or `fromzero import-hf`")
    base = load_yaml(config_path)
    model = dict(base.get("model") or {})
    given = dict(data.get("model") or {})
    for key, value in given.items():
        if key == "name" and value == model.get("name"):
            continue
        if key not in CONTINUED_MODEL_OVERRIDES:
            raise ConfigError(f"{file}: model.{key}: a continued run keeps the model of {init} (it starts from "
                              f"its weights); only {', '.join(CONTINUED_MODEL_OVERRIDES)} may change")
        model[key] = value
    if (data.get("data") or {}).get("tokenizer") is not None:
        raise ConfigError(f"{file}: data.tokenizer: a continued run encodes its text with {init}/tokenizer.json "
                          "(the embeddings are tied to it); remove data.tokenizer")
    objective = dict(base.get("objective") or {})
    wanted = dict(data.get("objective") or {})
    if wanted.get("name", objective.get("name")) != objective.get("name"):
        objective = {}  # another objective: its own defaults, not the run's settings
    objective.update(wanted)
    out = dict(data, model=model)
    if objective:
        out["objective"] = objective
    return out


def init_tokenizer(init: str, specials: list[str]) -> Tokenizer:
    """The ``init`` run's tokenizer, which must hold every special token the objective uses."""
    tokenizer = Tokenizer.load(Path(init) / "tokenizer.json")
    missing = [t for t in specials if tokenizer.token_to_id(t) is None]
    if missing:
        raise ConfigError(f"init: {init}/tokenizer.json has no {', '.join(missing)} token(s), which the "
                          "objective needs; continue with an objective the run was trained for")
    return tokenizer


def check_init_weights(init: str) -> Path:
    """The ``init`` run's weights file, checked readable (its header) before a continued run writes anything."""
    weights = find_weights(Path(init))
    if weights is None:
        raise CheckpointError(f"init: {init} has no model.safetensors and no checkpoint; train it first")
    try:
        with safe_open(str(weights), framework="pt") as f:
            f.keys()  # reads and checks the header
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{weights}: missing or unreadable weights ({err}); init needs a complete run "
                              "directory") from None
    return weights


def load_init_weights(model: torch.nn.Module, init: str, task_name: str) -> None:
    """Start from the ``init`` run's weights; its heads must cover the objective."""
    cfg = model.config
    if task_name == "masked_lm" and not getattr(cfg, "mlm_head", True):
        raise ConfigError(f"init: {init} has no masked-LM head (an encoder-only import); continued "
                          "masked-LM pretraining needs one: import a *ForMaskedLM / *ForPreTraining checkpoint")
    weights = find_weights(Path(init))
    if weights is None:
        raise CheckpointError(f"init: {init} has no model.safetensors and no checkpoint; train it first")
    load_weights(model, weights, f"{init}/config.yaml")


def check_nsp_head(model_cfg: Any, objective_cfg: Any, init: str) -> None:
    if getattr(objective_cfg, "nsp", False) and not getattr(model_cfg, "nsp_head", True):
        raise ConfigError(f"objective.nsp: {init} has no next-sentence head; continue with "
                          "--objective.nsp=false")
