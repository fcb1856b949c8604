"""Pretraining, end to end: recipe -> data -> model -> Trainer -> run directory -> samples.

Under torchrun (``--nproc N``) every rank runs this; rank 0 alone prepares the data, writes the run
directory and draws the samples, and the other ranks wait for it where they need what it wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from torch import nn

from fromzero.atomic import write_text, write_with
from fromzero.config import dump_yaml, load_yaml
from fromzero.data.shards import load_shards, prepare_corpus
from fromzero.data.token_shards import token_counts
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import CheckpointError, ConfigError
from fromzero.models import build_model, context_length
from fromzero.pretrain.continued import check_init_weights, check_nsp_head, init_tokenizer, load_init_weights
from fromzero.pretrain.counted import fit_counted, is_counted
from fromzero.pretrain.recipe import PretrainRecipe, load_recipe, resolved_dict
from fromzero.pretrain.tasks import get_task, with_special_tokens
from fromzero.runs import require_fresh_run_dir, require_resumable_run_dir, run_dir_for
from fromzero.runs.report import write_report
from fromzero.train.checkpoint import latest_checkpoint
from fromzero.train.distributed import barrier, init_distributed, main_first
from fromzero.train.hooks import PrepareModel, WrapObjective
from fromzero.train.loggers import plot_losses
from fromzero.train.parallel import check_world_size
from fromzero.train.precision import resolve_device
from fromzero.train.trainer import Trainer, TrainResult


@dataclass
class PretrainResult:
    run_dir: Path
    train: TrainResult
    samples: list[str]  # display strings: prompt + continuation, or fill-mask guesses
    unigram_entropy: float
    objective: str = "causal_lm"
    init: str | None = None  # the run this one continued, if any


def _check_resumable(run_dir: Path, saved: dict[str, Any]) -> None:
    """Refuse to resume with a different model, data or seed."""
    config_path = run_dir / "config.yaml"
    previous = load_yaml(config_path)
    for section in ("model", "objective", "data", "seed"):
        if previous.get(section) != saved.get(section):
            raise CheckpointError(f"{config_path}: '{section}' differs from the recipe; a resumed run must use "
                                  "the same model, data and seed (change train.* / optim.* only)")


def _prepare_data(recipe: PretrainRecipe, run_dir: Path, resume: bool, progress: bool, specials: list[str]):
    data_dir = run_dir / "data"
    if recipe.data.prepared:
        shards, prepared = load_shards(recipe.data.prepared), Path(recipe.data.prepared)
        if recipe.init and (Tokenizer.load(prepared / "tokenizer.json").hf.get_vocab()
                            != init_tokenizer(recipe.init, specials).hf.get_vocab()):
            raise ConfigError(f"data.prepared: {prepared} was encoded with another tokenizer than init's "
                              f"({recipe.init}); use data.inputs to encode the text with init's tokenizer")
        return shards, prepared
    if resume and any((data_dir / name).exists() for name in ("manifest.json", "meta.json")):
        return load_shards(data_dir), data_dir
    if recipe.init:
        prepare_corpus(recipe.data.inputs, data_dir, tokenizer=init_tokenizer(recipe.init, specials),
                       val_fraction=recipe.data.val_fraction, seed=recipe.seed, text_field=recipe.data.text_field,
                       progress=progress)
        return load_shards(data_dir), data_dir
    tok_cfg = with_special_tokens(recipe.data.tokenizer, specials)
    prepare_corpus(recipe.data.inputs, data_dir, tok_cfg, val_fraction=recipe.data.val_fraction,
                   seed=recipe.seed, text_field=recipe.data.text_field, progress=progress)
    return load_shards(data_dir), data_dir


def _start_run_dir(run_dir: Path, saved: dict[str, Any], tokenizer: Tokenizer) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", dump_yaml(saved))
    tokenizer.save(run_dir / "tokenizer.json")


def unigram_entropy(tokens) -> float:
    """Entropy (nats/token) of the token frequency distribution: the loss of a model that ignores context.

    Counted a chunk at a time, so a sharded corpus is never loaded whole."""
    counts = torch.from_numpy(token_counts(tokens))
    p = counts[counts > 0].double() / counts.sum()
    return float(-(p * p.log()).sum())


def pretrain(recipe_path: str | Path | None, overrides: list[str] | None = None, *,
             out: str | Path | None = None, resume: bool = False, progress: bool = True,
             prepare_model: PrepareModel | None = None, wrap_objective: WrapObjective | None = None,
             ) -> PretrainResult:
    """Run (or resume) a pretraining recipe; returns the run directory, final metrics and samples.

    ``prepare_model(model)`` is called once with the built (and ``init``-loaded) model before training and
    returns the model to train; ``wrap_objective(objective)`` returns what the Trainer trains. Compression uses
    both (recovery after pruning, distillation)."""
    recipe = load_recipe(recipe_path, overrides)
    run_dir = run_dir_for(out, recipe.out, recipe_path, "run")
    w = init_distributed(resolve_device(recipe.train.device))  # one process: nothing to join
    check_world_size(recipe.train, w.world_size)
    if resume:
        require_resumable_run_dir(run_dir)
    else:
        require_fresh_run_dir(run_dir)
    barrier()  # every rank has checked the run directory before rank 0 writes into it
    file = str(recipe_path) if recipe_path else None
    task, objective_cfg = get_task(recipe.task_name(file)), recipe.objective_config(file)
    if recipe.init:
        check_init_weights(recipe.init)  # before anything is written
    torch.manual_seed(recipe.seed)
    specials = task.special_tokens(objective_cfg)
    # rank 0 encodes the corpus into the run directory; the other ranks then read its shards
    (train_tokens, val_tokens, meta), data_dir = main_first(
        lambda: _prepare_data(recipe, run_dir, resume, progress, specials),
        lambda: _prepare_data(recipe, run_dir, True, False, specials))
    tokenizer = Tokenizer.load(data_dir / "tokenizer.json")
    model_cfg = recipe.model_config(vocab_size=tokenizer.vocab_size, file=file, fill=task.model_fields(tokenizer))
    saved = resolved_dict(recipe, model_cfg, objective_cfg, task.name)
    if resume:
        _check_resumable(run_dir, saved)
    main_first(lambda: _start_run_dir(run_dir, saved, tokenizer), lambda: None)
    torch.manual_seed(recipe.seed)  # init depends only on the seed, not on data preparation
    model = build_model(model_cfg)
    if recipe.init:
        check_nsp_head(model_cfg, objective_cfg, recipe.init)
        load_init_weights(model, recipe.init, task.name)
    if prepare_model is not None:
        model = prepare_model(model)
    seq_len = recipe.train.seq_len or (context_length(model_cfg) if task.seq_len_from_model else None)
    train_src, val_src = task.batches(train_tokens, val_tokens, tokenizer, seq_len, recipe.train.batch_size,
                                      recipe.seed, objective_cfg)
    objective = task.objective(objective_cfg)
    if wrap_objective is not None:
        objective = wrap_objective(objective)
    trainer = Trainer(model, objective, train_src, val_src, recipe.train, recipe.optim, run_dir, progress=progress)
    result = _train(trainer, train_tokens, saved, resume)
    model = trainer.export_model()  # all ranks; under FSDP the whole model reaches rank 0 only
    entropy = unigram_entropy(train_tokens)
    if not w.is_main:  # rank 0 writes the run directory and samples
        return PretrainResult(run_dir, result, [], entropy, task.name, recipe.init)
    _write_summary(run_dir, model, trainer, result, {"objective": task.name, "unigram_entropy": entropy,
                                                     "meta": meta, "init": recipe.init})
    # none: no samples (a continued run's text may have no fitting prompt; a counted model has no decoding loop)
    prompts = [] if is_counted(model) else list(recipe.sample.prompts)
    samples = task.samples(model.eval(), tokenizer, prompts, recipe.sample.generation) if prompts else []
    write_report(run_dir, samples=samples)  # report.html: config, curves, metrics, samples
    return PretrainResult(run_dir, result, samples, entropy, task.name, recipe.init)


def _train(trainer: Trainer, train_tokens: Any, saved: dict[str, Any], resume: bool) -> TrainResult:
    """Gradient steps; or, for a counted model (n-gram), one count over the training stream."""
    if is_counted(trainer.model):
        return fit_counted(trainer, train_tokens, saved)
    # A run killed before its first checkpoint resumes from step 0.
    return trainer.fit(resume=resume and latest_checkpoint(trainer.ckpt_dir) is not None)


def _write_summary(run_dir: Path, model: nn.Module, trainer: Trainer, result: TrainResult,
                   extra: dict[str, Any]) -> None:
    """model.safetensors, the loss plot and summary.json (rank 0)."""
    write_with(run_dir / "model.safetensors", lambda tmp: save_model(model, str(tmp)))
    plot_losses(run_dir / "metrics.jsonl", run_dir / "plots" / "loss.png", title=f"{run_dir.name}")
    summary = {"step": result.step, "train_loss": result.train_loss, "val_loss": result.val_loss,
               "best_val_loss": result.best_metric, "val_metrics": result.val_metrics,
               "objective": extra["objective"], "unigram_entropy": extra["unigram_entropy"],
               "stopped_early": result.stopped_early, "device": str(trainer.device),
               "precision": trainer.precision, "meta": extra["meta"], "init": extra["init"],
               "processes": trainer.world.world_size, "parallel": trainer.parallel}
    write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
