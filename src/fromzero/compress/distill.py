"""Knowledge distillation, end to end: a teacher run + a student recipe -> a distilled student run directory.

The loss is :mod:`fromzero.objectives.distillation` (Hinton et al. 2015); the optional DistilBERT-style init
(Sanh et al. 2019) is :mod:`fromzero.compress.student_init`. The student is trained by the normal runner of
its recipe, with the task objective wrapped in the distillation objective:

- a language-model teacher (a pretrained GPT run) takes a **pretraining recipe** (``causal_lm``), e.g.
  ``recipes/quickstart.yaml --model.n_layer=2 --model.n_embd=64``. The student trains on the teacher's own
  prepared data (``<teacher>/data``, or the folder the teacher's ``data.prepared`` names), so the
  tokenizer is the teacher's by construction, unless the recipe sets ``data.prepared`` itself (its
  tokenizer must then have the teacher's vocabulary). The data folder is copied into the student's run;
- a classifier or tagger teacher (a fine-tuned run, sequence or token classification, single label) takes
  a **fine-tuning recipe** of the same task kind, whose ``base`` is the student's backbone. A smaller
  student of the same family is asked for on the distill command: ``student_layers`` (depth) and
  ``student_width`` (n_embd; heads keep the teacher's head size, the FFN its ratio). The shallower student
  starts from every other block of ``base`` (the pretrained backbone, as DistilBERT starts from the
  pretrained BERT), or, with ``init_from_teacher``, of the fine-tuned teacher, head included; a narrower
  one starts from random weights (seeded by the recipe).

Everything the user can get wrong (teacher, recipe kind, family, vocabulary, labels, widths, output
folder) is checked before the runner writes anything. The output is the runner's run directory plus
``compression.json`` with one ``distill`` step; ``--cache-logits`` adds ``teacher_logits/`` (see
:mod:`fromzero.compress.teacher_cache`).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from fromzero.compress.run_output import write_compression_info
from fromzero.compress.student_init import init_from_teacher, pca_embeddings, teacher_state_for
from fromzero.compress.teacher_cache import CACHE_DIR, TeacherCache
from fromzero.config import field, load_yaml, require, to_dict
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import CheckpointError, ConfigError
from fromzero.finetune.methods import build_task_model
from fromzero.finetune.recipe import load_finetune_recipe
from fromzero.finetune.runner import finetune
from fromzero.finetune.task_dataset import load_task_data
from fromzero.models import build_model, family_of
from fromzero.objectives import Objective
from fromzero.objectives.distillation import Distillation, LiveTeacher, TeacherSource
from fromzero.pretrain.recipe import load_recipe
from fromzero.pretrain.runner import pretrain
from fromzero.pretrain.tasks import get_task
from fromzero.runs import Run, is_finetune_recipe_data, load_run, require_fresh_run_dir
from fromzero.train.trainer import TrainResult

TEACHER_KINDS = ("pretrained", "sequence_classification", "token_classification")


@dataclass(frozen=True)
class DistillConfig:
    """How to distill (each field is a ``fromzero compress distill`` option)."""

    alpha: float = field(0.5, help="weight of the soft (teacher) term; 1 - alpha weighs the hard-label loss")
    temperature: float = field(2.0, help="softmax temperature T of both teacher and student in the soft term")
    init_from_teacher: bool = field(False, help="copy embeddings, every other block, final norm and head")
    cache_logits: bool = field(False, help="store teacher logits in run_dir/teacher_logits (reused on resume)")
    cache_top_k: int = field(8, help="cached language-model logits kept per token (0 = the whole vocabulary)")
    student_layers: int | None = field(None, help="blocks of the student (default: the recipe's)")
    student_width: int | None = field(None, help="n_embd of a fine-tuned student (default: its base's)")
    pca_embeddings: bool = field(False, help="a narrower student's embeddings: the teacher's on its top principal "
                                 "components (blocks stay random)")

    def __post_init__(self) -> None:
        require(0.0 <= self.alpha <= 1.0, "alpha", f"must be in [0, 1], got {self.alpha}")
        require(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        require(self.cache_top_k >= 0, "cache_top_k", f"must be >= 0, got {self.cache_top_k}")
        require(self.student_layers is None or self.student_layers > 0, "student_layers", "must be positive")
        require(self.student_width is None or self.student_width > 0, "student_width", "must be positive")
        require(not (self.pca_embeddings and self.init_from_teacher), "pca_embeddings",
                "copies projected embeddings for a narrower student; --init-from-teacher copies same-width layers: "
                "choose one")


@dataclass
class DistillResult:
    run_dir: Path
    step: dict[str, Any]  # the compression step written to compression.json
    train: TrainResult


@dataclass
class _Plan:
    """What validation found: the runner to call, its overrides and the student's backbone config."""

    finetune: bool
    overrides: list[str]
    student_config: Any
    base_config: Any = None  # fine-tune: the base run's backbone config
    num_labels: int = 0
    task: Any = None  # fine-tune: the recipe's TaskConfig
    data_dir: Path | None = None  # language model: the prepared data the student trains on


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_teacher(path: str | Path) -> Run:
    """The teacher run, loaded; a folder that is not a run, or a kind that cannot teach, is an error."""
    if not (Path(path) / "config.yaml").is_file():
        raise CheckpointError(f"--teacher: {path} is not a run directory (no config.yaml); pass a folder written "
                              "by `fromzero pretrain`, `fromzero finetune` or `fromzero import-hf`")
    teacher = load_run(path)
    teacher.require_text("compress distill")
    if teacher.kind not in TEACHER_KINDS or (teacher.finetuned and teacher.problem != "single_label") or (
            not teacher.finetuned and family_of(teacher.model_config).name != "gpt"):
        what = f"a {family_of(teacher.model_config).name} {teacher.kind} run"
        raise ConfigError(f"--teacher: {path} is {what}; distillation needs a GPT language model or a single-label "
                          "sequence or token classifier")
    return teacher


def _check_vocabulary(student: Tokenizer, teacher: Run, where: str) -> None:
    if student.hf.get_vocab() != teacher.tokenizer.hf.get_vocab():
        raise ConfigError(f"student vocabulary ({student.vocab_size}) differs from the teacher's "
                          f"({teacher.tokenizer.vocab_size}); {where} must use the teacher's tokenizer "
                          f"({teacher.path / 'tokenizer.json'})")


def _check_family(student_config: Any, teacher: Run, file: str) -> None:
    student, family = family_of(student_config).name, family_of(teacher.model_config).name
    if student != family:
        raise ConfigError(f"{file}: the student is a {student} but the teacher ({teacher.path}) a {family}; "
                          "distill within one family")


def _resized(config: Any, cfg: DistillConfig) -> Any:
    """``config`` with the student's depth and width from the distill options."""
    changes: dict[str, Any] = {}
    if cfg.student_layers is not None:
        changes["n_layer"] = cfg.student_layers
    if cfg.student_width is not None:
        if not all(hasattr(config, k) for k in ("n_embd", "n_head", "mlp_hidden")):
            raise ConfigError(f"--student-width: a {family_of(config).name} has no n_embd to change; use a base "
                              "run of a narrower model")
        head_dim = config.n_embd // config.n_head
        if cfg.student_width % head_dim:
            raise ConfigError(f"--student-width: {cfg.student_width} is not a multiple of the teacher's head size "
                              f"({head_dim}); choose a multiple of {head_dim}")
        changes.update(n_embd=cfg.student_width, n_head=cfg.student_width // head_dim)
        if config.mlp_hidden:
            changes["mlp_hidden"] = round(config.mlp_hidden * cfg.student_width / config.n_embd)
    try:
        return dataclasses.replace(config, **changes)
    except ConfigError as err:
        raise ConfigError(f"--student-layers/--student-width: {err}") from None


def _lm_plan(teacher: Run, recipe_path: str, overrides: list[str], cfg: DistillConfig) -> _Plan:
    """A language-model student: a causal-LM pretraining recipe on the teacher's data and vocabulary."""
    overrides = list(overrides)
    if cfg.student_layers is not None:
        overrides.append(f"--model.n_layer={cfg.student_layers}")
    if cfg.student_width is not None:
        overrides.append(f"--model.n_embd={cfg.student_width}")
    recipe = load_recipe(recipe_path, overrides)
    task_name = recipe.task_name(recipe_path)
    if task_name != "causal_lm":
        raise ConfigError(f"{recipe_path}: objective {task_name!r}; a GPT teacher distills into a causal_lm student")
    if recipe.data.prepared:
        data_dir = Path(recipe.data.prepared)
    else:
        data_dir = Path((teacher.config.get("data") or {}).get("prepared") or teacher.path / "data")
        if not (data_dir / "tokenizer.json").is_file():
            raise ConfigError(f"--teacher: {teacher.path} has no prepared data ({data_dir}); set data.prepared in "
                              "the student recipe to a folder written by `fromzero prepare` with the teacher's "
                              "tokenizer")
        overrides.append(f"--data.prepared={data_dir}")
    if not (data_dir / "tokenizer.json").is_file():
        raise ConfigError(f"{recipe_path}: data.prepared: {data_dir} has no tokenizer.json; prepare it with "
                          "`fromzero prepare`")
    tokenizer = Tokenizer.load(data_dir / "tokenizer.json")
    _check_vocabulary(tokenizer, teacher, f"{recipe_path}: data.prepared ({data_dir})")
    student = recipe.model_config(vocab_size=tokenizer.vocab_size, file=recipe_path,
                                  fill=get_task(task_name).model_fields(tokenizer))
    _check_family(student, teacher, recipe_path)
    if student.vocab_size != teacher.model_config.vocab_size:
        raise ConfigError(f"student vocabulary ({student.vocab_size}) differs from the teacher's "
                          f"({teacher.model_config.vocab_size}); remove model.vocab_size from {recipe_path}")
    return _Plan(False, overrides, student, data_dir=data_dir)


def _finetune_plan(teacher: Run, recipe_path: str, overrides: list[str], cfg: DistillConfig) -> _Plan:
    """A classifier student: a fine-tuning recipe of the teacher's task, on a backbone of the same family."""
    recipe = load_finetune_recipe(recipe_path, overrides)
    if recipe.task.kind != teacher.kind or recipe.task.problem != "single_label":
        raise ConfigError(f"{recipe_path}: task.kind is {recipe.task.kind} ({recipe.task.problem}) but the teacher "
                          f"is a {teacher.kind} (single_label) run; use the teacher's task")
    if not (Path(recipe.base) / "config.yaml").is_file():
        raise ConfigError(f"{recipe_path}: base: {recipe.base} is not a run directory; use the teacher's base "
                          f"({(teacher.info or {}).get('base')})")
    base = load_run(recipe.base, with_weights=False)
    _check_vocabulary(base.tokenizer, teacher, f"{recipe_path}: base ({recipe.base})")
    _check_family(base.model_config, teacher, recipe_path)
    data = load_task_data(recipe.task, base.tokenizer, splits=("train",))
    labels = data.vocab.labels if data.vocab else []
    if labels != (teacher.vocab.labels if teacher.vocab else []):
        raise ConfigError(f"{recipe_path}: task.train has the labels {labels} but the teacher "
                          f"{teacher.vocab.labels if teacher.vocab else []}; use the teacher's task files")
    student = _resized(base.model_config, cfg)
    return _Plan(True, list(overrides), student, base.model_config, len(labels), recipe.task)


def _student_model(plan: _Plan) -> nn.Module:
    """A freshly built student (task head included for a fine-tune)."""
    model = build_model(plan.student_config)
    return build_task_model(model, plan.task, plan.num_labels) if plan.finetune else model


def _init_kind(plan: _Plan, cfg: DistillConfig) -> str:
    """teacher | pca-embeddings | base (a fine-tune's backbone from its base run, every other block when
    shallower) | random (a narrower fine-tuned student) | recipe (a language model: as its recipe initialises it)."""
    if cfg.init_from_teacher:
        return "teacher"
    if cfg.pca_embeddings:
        return "pca-embeddings"
    if not plan.finetune:
        return "recipe"
    depth_only = dataclasses.replace(plan.base_config, n_layer=getattr(plan.student_config, "n_layer", None)) \
        if hasattr(plan.base_config, "n_layer") else plan.base_config
    return "base" if depth_only == plan.student_config else "random"


def _prepare(plan: _Plan, teacher: Run, cfg: DistillConfig, counts: dict[str, int]):
    """The runner's ``prepare_model``: shrink a fine-tune's model to the student, copy teacher layers."""
    init = _init_kind(plan, cfg)

    def prepare(model: nn.Module) -> nn.Module:
        if plan.finetune and (plan.student_config != plan.base_config or init in ("teacher", "pca-embeddings")):
            student = _student_model(plan)
            if init == "base":  # DistilBERT: every other block of the pretrained backbone
                init_from_teacher(student.backbone, model.backbone)
            model = student
        if init == "teacher":
            init_from_teacher(model, teacher.model)
        elif init == "pca-embeddings":
            pca_embeddings(model.backbone if plan.finetune else model,
                           teacher.model.backbone if plan.finetune else teacher.model)
        counts["student"] = _parameters(model)
        return model

    return prepare


def _wrap(teacher: Run, cfg: DistillConfig, cache_dir: Path):
    """The runner's ``wrap_objective``: the task objective inside the distillation objective."""
    top_k = (cfg.cache_top_k or None) if cfg.cache_logits and not teacher.finetuned else None
    caches: list[TeacherCache] = []

    def wrap(task: Objective) -> Objective:
        source: TeacherSource
        if cfg.cache_logits:
            source = TeacherCache(cache_dir, lambda: LiveTeacher(teacher.model, task, top_k))
            caches.append(source)
        else:
            source = LiveTeacher(teacher.model, task)
        return Distillation(task, source, cfg.alpha, cfg.temperature)

    return wrap, caches


def check_distill(teacher_dir: str | Path, recipe_path: str | Path | None, overrides: list[str] | None,
                  cfg: DistillConfig) -> tuple[Run, _Plan]:
    """Every check that needs no output: the teacher, the recipe, and the student against the teacher."""
    teacher = load_teacher(teacher_dir)
    if recipe_path is None or not Path(recipe_path).is_file():
        raise ConfigError(f"STUDENT_RECIPE: {recipe_path} not found; pass a pretraining recipe (GPT teacher) or a "
                          "fine-tuning recipe (classifier teacher)")
    finetune_recipe = is_finetune_recipe_data(load_yaml(recipe_path))
    if finetune_recipe != teacher.finetuned:
        need = "fine-tuning recipe (base + task)" if teacher.finetuned else "pretraining recipe (model + data)"
        raise ConfigError(f"{recipe_path}: the teacher {teacher.path} is a {teacher.kind} run; its student needs a "
                          f"{need}")
    make = _finetune_plan if teacher.finetuned else _lm_plan
    plan = make(teacher, str(recipe_path), list(overrides or []), cfg)
    if cfg.init_from_teacher:
        teacher_state_for(_student_model(plan), teacher.model)  # widths and names, before anything is written
    return teacher, plan


def _finish(run_dir: Path, plan: _Plan, teacher: Run, step: dict[str, Any]) -> None:
    """What the runner does not write: the student's data and compression.json."""
    if plan.data_dir is not None and not (run_dir / "data").exists():
        shutil.copytree(plan.data_dir, run_dir / "data")  # held-out shards for eval and later compression
    write_compression_info(run_dir, teacher.path, [step])


def distill(teacher_dir: str | Path, recipe_path: str | Path | None, overrides: list[str] | None = None,
            cfg: DistillConfig | None = None, *, out: str | Path | None = None, resume: bool = False,
            progress: bool = True) -> DistillResult:
    """Train the student of ``recipe_path`` (+ ``overrides``) on ``teacher_dir``'s soft targets into ``out``
    (default: ``<teacher>-distilled``); see the module docstring."""
    cfg = cfg or DistillConfig()
    teacher, plan = check_distill(teacher_dir, recipe_path, overrides, cfg)
    run_dir = Path(out) if out is not None else teacher.path.parent / f"{teacher.path.name}-distilled"
    if run_dir.resolve() == teacher.path.resolve():
        raise ConfigError(f"--out: {run_dir} is the teacher; choose another folder")
    if not resume:
        require_fresh_run_dir(run_dir)
    counts: dict[str, int] = {}
    wrap, caches = _wrap(teacher, cfg, run_dir / CACHE_DIR)
    runner = finetune if plan.finetune else pretrain
    result = runner(recipe_path, plan.overrides, out=run_dir, resume=resume, progress=progress,
                    prepare_model=_prepare(plan, teacher, cfg, counts), wrap_objective=wrap)
    for cache in caches:
        cache.flush()
    step = {"op": "distill", "teacher": str(teacher.path), "alpha": cfg.alpha, "temperature": cfg.temperature,
            "init": _init_kind(plan, cfg), "teacher_parameters": _parameters(teacher.model),
            "student_parameters": counts["student"], "student_model": to_dict(plan.student_config),
            "cache_logits": cfg.cache_logits,
            "cache_top_k": (cfg.cache_top_k or None) if cfg.cache_logits and not plan.finetune else None}
    _finish(run_dir, plan, teacher, step)
    return DistillResult(run_dir, step, result.train)
