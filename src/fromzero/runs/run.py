"""Open any run directory, the unit users pass around: pretrained, imported or fine-tuned.

    run_dir/config.yaml        resolved recipe (pretraining: model fields spelled out; fine-tune: its recipe)
    run_dir/tokenizer.json     Hugging Face tokenizers file
    run_dir/model.safetensors  final weights (else the latest checkpoint's)
    run_dir/checkpoints/       resumable checkpoints
    run_dir/data/              pretraining: the token shards it trained on; fine-tune: its validation/test copies
    run_dir/finetune.json      fine-tuned runs only: backbone family and config, head kind, problem, labels, ...
    run_dir/source.json        imported runs only: the Hugging Face checkpoint it came from
    run_dir/compression.json   compressed runs only: the steps applied (see fromzero.runs.compression)
    run_dir/ensemble.json      ensembles only (``fromzero ensemble``): members under members/ (runs/ensemble.py)
    run_dir/vision.json        image runs only (``fromzero train``): task, family and config, class names,
                               channels, image size and the pixel normalisation; they have no tokenizer.json
    run_dir/recommender.json   recommender runs only (runs/recommender.py); speech.json: speech runs (runs/speech.py)
    run_dir/metrics.jsonl, tensorboard/, plots/, summary.json, eval.json

Everything that consumes a trained model (generate, eval, info, serve,
export, fine-tuning's base) goes through :func:`load_run`. A fine-tuned run's
model is its backbone wrapped in the task head of its ``kind``
(``models.heads.build_head``); ``sft`` and ``seq2seq`` fine-tunes have no
head, so their model is the plain GPT / T5 under the family's own parameter
names, as a pretraining run saves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from fromzero.atomic import require_new_folder
from fromzero.config import load_yaml
from fromzero.data.labels import LabelVocab
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import CheckpointError, ConfigError
from fromzero.models import build_model, model_config
from fromzero.models.heads import build_head
from fromzero.runs.compression import COMPRESSION_INFO, check_compression_info, restore_structure
from fromzero.runs.ensemble import ENSEMBLE_INFO, load_ensemble_model
from fromzero.runs.recommender import (
    RECOMMEND_INFO,
    RECOMMEND_TASK,
    build_recommender_model,
    read_recommender_info,
)
from fromzero.runs.run_json import read_run_json
from fromzero.runs.speech import SPEECH_INFO, SPEECH_TASK, build_speech_model, read_speech_info, speech_model_config
from fromzero.runs.weights import find_weights, load_weights

FINETUNE_INFO = "finetune.json"
VISION_INFO = "vision.json"
#: What an image run learns (``task:`` of a vision recipe; ``Run.kind`` of its run directory).
VISION_TASKS = ("image_classification", "detection", "segmentation", "denoising", "mae")


@dataclass
class Run:
    """A loaded run directory. ``info`` and ``vocab`` are set for fine-tuned runs only."""

    path: Path
    config: dict[str, Any]  # config.yaml as written (the resolved recipe)
    model_config: Any  # the backbone family's config
    model: nn.Module | None  # eval mode; None when loaded without weights
    tokenizer: Tokenizer | None  # None for image runs
    weights: Path | None
    info: dict[str, Any] | None = None  # finetune.json
    vocab: LabelVocab | None = None  # class or tag names of a fine-tuned run
    compression: dict[str, Any] | None = None  # compression.json of a compressed run
    vision: dict[str, Any] | None = None  # vision.json of an image run
    recommender: dict[str, Any] | None = None  # recommender.json of a recommender run (runs/recommender.py)
    speech: dict[str, Any] | None = None  # speech.json of a speech recognition run (runs/speech.py)

    @property
    def is_image_run(self) -> bool:
        return self.vision is not None

    @property
    def finetuned(self) -> bool:
        return self.info is not None

    @property
    def kind(self) -> str:
        """``pretrained`` (pretrained or imported), else the fine-tune's task kind: sequence_classification |
        token_classification | span_qa | sft | seq2seq; an image run's task (``VISION_TASKS``)."""
        if self.vision is not None:
            return self.vision["task"]
        if self.recommender is not None:
            return RECOMMEND_TASK
        if self.speech is not None:
            return SPEECH_TASK
        return self.info["kind"] if self.info is not None else "pretrained"

    def require_text(self, command: str) -> Tokenizer:
        """The tokenizer, or a one-line error saying that ``command`` works on text runs, not image runs."""
        if self.recommender is not None:
            raise CheckpointError(f"{self.path} is a recommender run; `fromzero {command}` works on text runs: use "
                                  "`fromzero recommend` (or `fromzero serve`) for recommender runs")
        if self.speech is not None:
            raise CheckpointError(f"{self.path} is a speech run; `fromzero {command}` works on text runs: use "
                                  "`fromzero transcribe` (or `fromzero serve`, `fromzero eval`) for speech runs")
        if self.tokenizer is None:
            raise CheckpointError(f"{self.path} is an image run ({self.kind}); `fromzero {command}` works on text "
                                  "runs: use `fromzero predict` / `fromzero eval` for image runs")
        return self.tokenizer

    @property
    def problem(self) -> str:
        """single_label | multi_label | regression (sequence classification)."""
        return (self.info or {}).get("problem") or "single_label"

    @property
    def max_len(self) -> int:
        """Tokens per sequence a fine-tuned head was trained on, special tokens included."""
        return int((self.config.get("task") or {}).get("max_len", 128))


def run_dir_for(out: str | Path | None, recipe_out: str | None, recipe_path: str | Path | None,
                default: str) -> Path:
    """Where a run goes: ``--out``, else the recipe's ``out``, else ``runs/<recipe file name>`` (``default``
    without a recipe file)."""
    if out is not None:
        return Path(out)
    if recipe_out:
        return Path(recipe_out)
    return Path("runs") / (Path(recipe_path).stem if recipe_path else default)


def require_fresh_run_dir(run_dir: Path) -> None:
    """A new run's folder must not hold a run (that is what ``--resume`` is for) or anything else."""
    if run_dir.is_dir() and ((run_dir / "config.yaml").exists() or (run_dir / "checkpoints").exists()):
        raise CheckpointError(f"{run_dir} already holds a run; pass --resume to continue it, or choose "
                              "another --out")
    require_new_folder(run_dir, "choose another --out or delete this one")


def require_resumable_run_dir(run_dir: Path) -> None:
    """``--resume`` needs a run that started: its config.yaml."""
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir}: nothing to resume (no config.yaml); run without --resume")


def open_run_dir(run_dir: Path, saved: dict[str, Any], resume: bool, fixed: tuple[str, ...],
                 load_saved: Callable[[Path], dict[str, Any]] | None = None) -> None:
    """Check where a run writes before any work: a new run needs a fresh folder; ``--resume`` needs a started
    run whose ``fixed`` recipe sections equal ``saved``'s (only train.* / optim.* may change). ``load_saved``
    reads the old config.yaml through the recipe loader, so keys added since then compare at their defaults
    (a config the loader rejects is compared as written)."""
    if not resume:
        require_fresh_run_dir(run_dir)
        return
    require_resumable_run_dir(run_dir)
    config = run_dir / "config.yaml"
    try:
        previous = load_saved(config) if load_saved is not None else load_yaml(config)
    except ConfigError:
        previous = load_yaml(config)
    for section in fixed:
        if previous.get(section) != saved.get(section):
            raise CheckpointError(f"{config}: '{section}' differs from the recipe; a resumed run must keep "
                                  f"{', '.join(fixed)} (change train.* / optim.* only)")


def is_finetune_recipe_data(config: dict[str, Any]) -> bool:
    """True for a fine-tuning recipe's content (it has ``base`` and ``task`` sections), e.g. a config.yaml."""
    return isinstance(config, dict) and "base" in config and "task" in config


def is_vision_recipe_data(config: Any) -> bool:
    """True for a vision recipe's content: its ``task`` names a vision task (a text fine-tune's is a section)."""
    return isinstance(config, dict) and config.get("task") in VISION_TASKS


def is_recommend_recipe_data(config: Any) -> bool:
    """True for a recommender recipe's content (``task: recommendation``)."""
    return isinstance(config, dict) and config.get("task") == RECOMMEND_TASK


def recipe_command(config: Any) -> str | None:
    """Which command runs a recipe's content: ``train`` (a vision task or recommendation), ``finetune``
    (``base`` and a ``task`` section), ``pretrain`` (no task); None when it cannot tell (another task name)."""
    if is_vision_recipe_data(config) or is_recommend_recipe_data(config):
        return "train"
    if is_finetune_recipe_data(config):
        return "finetune"
    return "pretrain" if isinstance(config, dict) and "task" not in config else None


def is_finetune_run(path: str | Path) -> bool:
    """True for a finished run directory written by ``fromzero finetune``."""
    return (Path(path) / FINETUNE_INFO).is_file()


def _read_config(path: Path) -> dict[str, Any]:
    if not (path / "config.yaml").is_file():
        raise CheckpointError(f"{path}: not a run directory (no config.yaml); pass the folder given by "
                              "`fromzero pretrain --out`")
    config = load_yaml(path / "config.yaml")
    if is_finetune_recipe_data(config) and not is_finetune_run(path):
        raise CheckpointError(f"{path}: an unfinished fine-tune (no {FINETUNE_INFO}); finish it with "
                              f"`fromzero finetune {path / 'config.yaml'} --out {path} --resume`")
    if is_vision_recipe_data(config) and not (path / VISION_INFO).is_file():
        raise CheckpointError(f"{path}: an unfinished image run (no {VISION_INFO}); finish it with "
                              f"`fromzero train {path / 'config.yaml'} --out {path} --resume`")
    if is_recommend_recipe_data(config) and not (path / RECOMMEND_INFO).is_file():
        raise CheckpointError(f"{path}: an unfinished recommender run (no {RECOMMEND_INFO}); finish it with "
                              f"`fromzero train {path / 'config.yaml'} --out {path} --resume`")
    return config


def _backbone_config(path: Path, config: dict[str, Any], info: dict[str, Any] | None) -> Any:
    """The backbone family's config: from finetune.json for a fine-tune, else config.yaml's model section."""
    if info is not None:
        return model_config(info["family"], info["model"], file=str(path / FINETUNE_INFO))
    section = dict(config.get("model") or {})
    name = section.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"{path / 'config.yaml'}: model.name is missing")
    return model_config(name, section, file=str(path / "config.yaml"))


def _model(cfg: Any, config: dict[str, Any], info: dict[str, Any] | None) -> nn.Module:
    """A freshly built model: the backbone, wrapped in its task head for a fine-tune."""
    model = build_model(cfg)
    if info is None:
        return model
    task = config.get("task") or {}
    return build_head(model, info.get("kind") or task.get("kind", "sequence_classification"), info["num_labels"],
                      problem=info.get("problem") or task.get("problem", "single_label"),
                      pooling=info.get("pooling") or task.get("pooling"), dropout=task.get("dropout"))


def load_run(run_dir: str | Path, *, with_weights: bool = True, device: str = "cpu") -> Run:
    """Load config, tokenizer and (optionally) the trained model of any run directory."""
    path = Path(run_dir)
    config = _read_config(path)
    if (path / VISION_INFO).is_file():
        return _load_image_run(path, config, with_weights, device)
    if (path / RECOMMEND_INFO).is_file():
        info = read_recommender_info(path)
        cfg = model_config(info["family"], info["model"], file=str(path / RECOMMEND_INFO))
        model = build_recommender_model(path, info, device) if with_weights else None
        return Run(path, config, cfg, model, None, path / "model.safetensors" if with_weights else None,
                   recommender=info)
    if (path / SPEECH_INFO).is_file():
        info = read_speech_info(path)
        model = build_speech_model(path, info, device) if with_weights else None
        return Run(path, config, speech_model_config(path, info), model, None,
                   path / "model.safetensors" if with_weights else None, speech=info)
    info = read_run_json(path / FINETUNE_INFO) if is_finetune_run(path) else None
    cfg = _backbone_config(path, config, info)
    if not (path / "tokenizer.json").is_file():
        raise CheckpointError(f"{path}: tokenizer.json is missing; the run directory is incomplete")
    tokenizer = Tokenizer.load(path / "tokenizer.json")
    vocab = LabelVocab(info["labels"]) if info and info.get("labels") else None
    compression = read_compression_info(path)
    model, weights = None, None
    if with_weights and info is not None and (path / ENSEMBLE_INFO).is_file():  # members answer as one model
        weights = path / ENSEMBLE_INFO
        model = load_ensemble_model(path, read_run_json(weights), lambda p: load_run(p, device=device))
    elif with_weights:
        weights = path / "model.safetensors" if info is not None else find_weights(path)
        if weights is None:
            raise CheckpointError(f"{path}: no model.safetensors and no checkpoint; train it first")
        model = _model(cfg, config, info)
        if compression is not None:
            restore_structure(model, compression, path / COMPRESSION_INFO)
        load_weights(model, weights, FINETUNE_INFO if info is not None else "config.yaml", device)
        model.to(device).eval()
    return Run(path, config, cfg, model, tokenizer, weights, info, vocab, compression)


def _load_image_run(path: Path, config: dict[str, Any], with_weights: bool, device: str) -> Run:
    """An image run: the family named in vision.json (heads are part of image families), no tokenizer."""
    vision = read_run_json(path / VISION_INFO)
    for key in ("task", "family", "model", "class_names", "mean", "std"):
        if key not in vision:
            raise CheckpointError(f"{path / VISION_INFO}: '{key}' is missing; the run directory is damaged")
    cfg = model_config(vision["family"], vision["model"], file=str(path / VISION_INFO))
    compression = read_compression_info(path)
    model, weights = None, None
    if with_weights and (path / ENSEMBLE_INFO).is_file():  # an image-classification ensemble
        weights = path / ENSEMBLE_INFO
        model = load_ensemble_model(path, read_run_json(weights), lambda p: load_run(p, device=device),
                                    vision).to(device)
    elif with_weights:
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise CheckpointError(f"{path}: model.safetensors is missing; the run directory is incomplete")
        model = build_model(cfg)
        if compression is not None:
            restore_structure(model, compression, path / COMPRESSION_INFO)
        load_weights(model, weights, VISION_INFO, device)
        model.to(device).eval()
    return Run(path, config, cfg, model, None, weights, None, None, compression, vision)


def read_compression_info(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's compression.json, checked; None for a run that was never compressed."""
    file = Path(run_dir) / COMPRESSION_INFO
    if not file.is_file():
        return None
    info = read_run_json(file)
    check_compression_info(info, file)
    return info
