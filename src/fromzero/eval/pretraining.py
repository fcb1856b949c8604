"""Evaluate a pretrained run on its own objective, next to trivial baselines.

For masked LM the report is masked-token accuracy and NSP accuracy; for
span corruption, the token accuracy over the targets (the dropped spans plus
their sentinels and eos) and ``span_accuracy``, the fraction of spans
reconstructed exactly.
Each sits next to the baseline a model that ignores its input would reach:
always predicting the most frequent label seen in training batches (a
token, or the majority NSP class). Beating it shows the model learned.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from fromzero.data.shards import load_shards
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import DataError
from fromzero.models import context_length
from fromzero.objectives import IGNORE_INDEX
from fromzero.pretrain.recipe import PretrainRecipe
from fromzero.pretrain.tasks import get_task
from fromzero.progress import progress as progress_bar
from fromzero.runs import Run

LABEL_KEYS = {"labels": "token", "nsp_labels": "nsp"}


def _label_counts(source: Any, n_batches: int) -> dict[str, Counter]:
    counts: dict[str, Counter] = {name: Counter() for name in [*LABEL_KEYS.values(), "span_token"]}
    for i in range(n_batches):
        batch = source.batch(i, 0)
        for key, name in LABEL_KEYS.items():
            if key in batch:
                values = batch[key][batch[key] != IGNORE_INDEX]
                counts[name].update(values.tolist())
        if "target_span_ids" in batch:  # T5: the dropped tokens alone, without sentinels and eos
            counts["span_token"].update(batch["labels"][batch["target_span_ids"] > 0].tolist())
    return counts


def majority_baselines(train_source: Any, val_source: Any, n_batches: int) -> dict[str, float]:
    """Accuracy on validation labels of always predicting the most frequent training label."""
    train = _label_counts(train_source, n_batches)
    val = _label_counts(val_source, n_batches)
    out = {}
    for name, counter in train.items():
        if counter and val[name]:
            top, _ = counter.most_common(1)[0]
            out[f"baseline_{name}_accuracy"] = val[name][top] / sum(val[name].values())
    return out


def shards_for(run: Run, shards: str | Path | None) -> Path:
    """The token shards to evaluate on: the run's own, or ``shards`` when they share the run's tokenizer.

    Another run's shards let a base model and its continued-pretraining run be scored on the same
    held-out domain text.
    """
    if shards is None:
        return run.path / "data"
    folder = Path(shards)
    if not (folder / "tokenizer.json").is_file():
        raise DataError(f"--shards: {folder} has no tokenizer.json; pass a run's data/ folder or a "
                        "`fromzero prepare` output")
    if Tokenizer.load(folder / "tokenizer.json").hf.get_vocab() != run.tokenizer.hf.get_vocab():
        raise DataError(f"--shards: {folder} was encoded with another tokenizer than {run.path}; token ids would "
                        "mean different things (continued-pretraining runs share their base's tokenizer)")
    return folder


@torch.no_grad()
def evaluate_pretraining(run: Run, *, n_batches: int = 20, batch_size: int = 16, progress: bool = True,
                         shards: str | Path | None = None) -> dict[str, float]:
    """The run's objective metrics on a validation split (its own, or ``shards``'), plus majority baselines."""
    recipe_dict = dict(run.config)
    task = get_task(recipe_dict["objective"]["name"])
    objective_cfg = PretrainRecipe(objective=recipe_dict["objective"]).objective_config()
    train_tokens, val_tokens, _ = load_shards(shards_for(run, shards))
    seq_len = (recipe_dict.get("train") or {}).get("seq_len") or context_length(run.model_config)
    seed = int(recipe_dict.get("seed", 0)) + 100  # batches the training loop never drew
    train_src, val_src = task.batches(train_tokens, val_tokens, run.tokenizer, seq_len, batch_size, seed,
                                      objective_cfg)
    if val_src is None:
        raise ValueError("the validation split is too small to evaluate; prepare with a larger val_fraction")
    objective = task.objective(objective_cfg)
    totals: dict[str, float] = {}
    weight = 0
    for i in progress_bar(range(n_batches), enabled=progress, desc="eval", unit="batch"):
        out = objective(run.model, val_src.batch(i, 0))
        for key, value in out.metrics.items():
            totals[key] = totals.get(key, 0.0) + float(value) * out.weight
        weight += out.weight
    metrics = {key: value / max(weight, 1) for key, value in totals.items()}
    metrics.update(majority_baselines(train_src, val_src, n_batches))
    return metrics
