"""Supervised fine-tuning as a task kind of ``fromzero finetune`` (``task.kind: sft``): checks and baselines.

The model is the base GPT itself, with its own LM head: no task head is
added, so the fine-tuned run's ``model.safetensors`` keeps GPT's parameter
names and loads as a plain GPT run (``fromzero generate``, ``serve``,
``export-hf``). The objective is :class:`~fromzero.objectives.CausalLM` on
labels that score only the assistant's replies (``data/sft_data.py``).

Generation metrics answer each prompt greedily with the template's stop
strings (``finetune.predict``): the first ``task.eval_examples`` validation
conversations at each evaluation, the whole test split at the end. The
encoding of conversations is ``finetune.task_dataset``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from fromzero.atomic import write_text
from fromzero.errors import ConfigError
from fromzero.eval.task_outputs import TaskOutputs
from fromzero.finetune.recipe import TaskConfig
from fromzero.finetune.task_dataset import TaskData
from fromzero.models import family_of


def check_sft_base(model_config: Any, task: TaskConfig, file: str) -> None:
    """SFT needs a causal LM (a gpt run) whose context holds ``task.max_len`` tokens."""
    family = family_of(model_config).name
    if family != "gpt":
        raise ConfigError(f"{file}: task.kind: sft fine-tunes a causal language model, and base is a {family} run; "
                          "use a gpt run (`fromzero pretrain recipes/quickstart.yaml`)")
    if task.max_len > model_config.block_size:
        raise ConfigError(f"{file}: task.max_len: {task.max_len} exceeds the base model's context (block_size "
                          f"{model_config.block_size}); set it to {model_config.block_size} or less")


def majority_replies(data: TaskData) -> dict[str, Any]:
    """The most frequent training reply overall and per group (the majority-answer baseline's predictions)."""
    train = data.examples["train"]
    by_group: dict[str, Counter] = defaultdict(Counter)
    for c in train:
        if c.group is not None:
            by_group[c.group][c.reference] += 1
    overall = Counter(c.reference for c in train).most_common(1)[0][0]
    return {"overall": overall, "by_group": {g: n.most_common(1)[0][0] for g, n in sorted(by_group.items())}}


def sft_run_info(task: TaskConfig, data: TaskData) -> dict[str, Any]:
    """What an SFT run adds to finetune.json: its template, the loss mask choice, the majority replies."""
    return {"chat_template": task.chat_template, "prompt_loss": task.prompt_loss,
            "majority_reply": majority_replies(data)}


def write_samples(path: Path, out: TaskOutputs) -> Path:
    """One JSON line per prompt: prompt, reference, generation (as generated), group."""
    rows = [{"prompt": p, "reference": r[0], "generation": g, "group": grp}
            for p, r, g, grp in zip(out.prompts or [], out.y_true, out.y_pred, out.groups or [None] * len(out.y_true),
                                    strict=True)]
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path
