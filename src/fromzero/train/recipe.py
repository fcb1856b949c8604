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

Continued pretraining (domain-adaptive): ``init: RUN_DIR`` starts from that
run's weights and tokenizer instead of a random model and a new tokenizer.
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

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fromzero.config import apply_overrides, field, from_dict, load_yaml, require, to_dict
from fromzero.data.tokenizers import TokenizerConfig
from fromzero.errors import ConfigError
from fromzero.generation.sampling import SamplingConfig
from fromzero.models import config_class, family_of, model_config
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
        from fromzero.train.tasks import DEFAULT_TASK

        name = self.objective.get("name")
        if name is None:
            family = family_of(self.model_config(file=file)).name
            name = DEFAULT_TASK.get(family, "causal_lm")
        return name

    def objective_config(self, file: str | None = None) -> Any:
        """The validated config of the objective (its keys checked like any other section)."""
        from fromzero.train.tasks import get_task

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


# Model fields a continued run may change: they leave every weight's shape as it is.
CONTINUED_MODEL_OVERRIDES = ("dropout", "attn_dropout")


def _continued(data: dict[str, Any], file: str) -> dict[str, Any]:
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


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> PretrainRecipe:
    """Read, override and validate a recipe (``path=None`` starts from the defaults)."""
    file = str(path) if path is not None else None
    data = load_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    if data.get("init"):
        data = _continued(data, file or "<overrides>")
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

