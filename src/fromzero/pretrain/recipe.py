"""The pretraining recipe: one YAML file, validated into typed sections before any work starts.

    seed: 1337
    out: runs/quickstart          # default run directory (--out overrides)
    model: {name: gpt-char-small, n_layer: 4}      # preset or family + field overrides
    objective: {name: causal_lm}                   # default: the family's (gpt/bert/t5)
    data:  {inputs: [bundled:pride_and_prejudice], tokenizer: {kind: char}}
    train: {max_steps: 2000, batch_size: 32}
    optim: {lr: 1e-3, schedule: cosine}
    sample: {prompts: ["Elizabeth"], generation: {max_new_tokens: 300}}

Every key can be overridden on the command line: ``--train.max_steps=50``.

Continued pretraining (``init: RUN_DIR``) is :mod:`fromzero.pretrain.continued`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fromzero.config import apply_overrides, field, from_dict, load_yaml, require, to_dict
from fromzero.data.tokenizers import TokenizerConfig
from fromzero.errors import ConfigError
from fromzero.generation.sampling import SamplingConfig
from fromzero.models import config_class, family_of, model_config
from fromzero.pretrain.continued import continued_recipe_data
from fromzero.pretrain.tasks import DEFAULT_TASK, get_task
from fromzero.train.optim import OptimConfig
from fromzero.train.trainer import TrainConfig


@dataclass(frozen=True)
class DataConfig:
    """Where the text comes from and how it is tokenized and split."""

    inputs: list[str] = field(["bundled:pride_and_prejudice"],
                              help=".txt/.jsonl files or folders, or bundled:NAME")
    prepared: str | None = field(None, help="a folder written by `fromzero prepare` (overrides inputs)")
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig, help="tokenizer to train")
    text_field: str = field("text", help="JSONL field holding the text")
    val_fraction: float = field(0.1, help="fraction of the token stream held out for validation")

    def __post_init__(self) -> None:
        require(self.prepared is not None or len(self.inputs) > 0, "inputs", "give at least one input")
        require(0.0 <= self.val_fraction < 1.0, "val_fraction", f"must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class SampleConfig:
    """Samples printed at the end of training."""

    prompts: list[str] = field(["\n"], help="one sample is generated per prompt")
    generation: SamplingConfig = field(default_factory=SamplingConfig, help="decoding settings")


@dataclass(frozen=True)
class PretrainRecipe:
    """A complete pretraining run. ``model`` is checked against its family's config class."""

    model: dict[str, Any] = field(default_factory=lambda: {"name": "gpt-char-small"},
                                  help="name: a preset or family, plus field overrides")
    objective: dict[str, Any] = field(default_factory=dict,
                                      help="name: causal_lm | masked_lm | span_corruption, plus its settings")
    data: DataConfig = field(default_factory=DataConfig, help="corpus and tokenizer")
    train: TrainConfig = field(default_factory=TrainConfig, help="loop settings")
    optim: OptimConfig = field(default_factory=OptimConfig, help="optimizer and schedule")
    sample: SampleConfig = field(default_factory=SampleConfig, help="samples after training")
    seed: int = field(1337, help="fixes data order, init, dropout and the train/val split")
    out: str | None = field(None, help="run directory (default: runs/<recipe name>)")
    init: str | None = field(None, help="continued pretraining: a run directory whose weights, tokenizer, "
                                        "model and objective this run starts from")

    def model_name(self, file: str | None = None) -> str:
        name = self.model.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{file + ': ' if file else ''}model.name: required (a preset such as "
                              "'gpt-char-small' or a family such as 'gpt')")
        return name

    def task_name(self, file: str | None = None) -> str:
        """The objective's name: given, or the default of the model's family."""
        name = self.objective.get("name")
        if name is None:
            family = family_of(self.model_config(file=file)).name
            name = DEFAULT_TASK.get(family, "causal_lm")
        return name

    def objective_config(self, file: str | None = None) -> Any:
        """The validated config of the objective (its keys checked like any other section)."""
        task = get_task(self.task_name(file))
        values = {k: v for k, v in self.objective.items() if k != "name"}
        return from_dict(task.config_cls, values, file=file, prefix="objective")

    def model_config(self, vocab_size: int | None = None, file: str | None = None,
                     fill: dict[str, Any] | None = None) -> Any:
        """The validated family config, with ``vocab_size`` (and ``fill``: e.g. pad/eos ids from the
        tokenizer) set where the recipe leaves them unset."""
        values = dict(self.model)
        name = self.model_name(file)
        values.pop("name")
        cls = config_class(name)
        fields = {f.name for f in dataclasses.fields(cls)} if cls else set()
        for key, value in (fill or {}).items():
            if key in fields and value is not None:
                values.setdefault(key, value)
        if vocab_size is not None:
            given = values.get("vocab_size")
            if isinstance(given, int) and given < vocab_size:
                raise ConfigError(f"{file + ': ' if file else ''}model.vocab_size: {given} is smaller than "
                                  f"the tokenizer's vocabulary ({vocab_size}); remove it to use the tokenizer's")
            values.setdefault("vocab_size", vocab_size)
        return model_config(name, values, file=file)


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> PretrainRecipe:
    """Read, override and validate a recipe (``path=None`` starts from the defaults)."""
    file = str(path) if path is not None else None
    data = load_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    if data.get("init"):
        data = continued_recipe_data(data, file or "<overrides>")
    recipe = from_dict(PretrainRecipe, data, file=file or "<overrides>")
    recipe.model_config(file=file or "<overrides>")  # check model and objective keys now, before any work
    recipe.objective_config(file=file or "<overrides>")
    return recipe


def resolved_dict(recipe: PretrainRecipe, model_cfg: Any, objective_cfg: Any, task_name: str) -> dict[str, Any]:
    """The recipe as saved in a run directory: every model and objective field spelled out."""
    out = to_dict(recipe)
    out["model"] = {"name": recipe.model["name"], **to_dict(model_cfg)}
    out["objective"] = {"name": task_name, **to_dict(objective_cfg)}
    return out

