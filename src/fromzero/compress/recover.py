"""Recovery after pruning: a normal recipe run through the normal Trainer, with pruned weights held at zero.

A fine-tuned source recovers with a fine-tuning recipe (its own config.yaml works: ``--recover
RUN/config.yaml --train.max_steps=200``), a pretrained GPT/BERT/T5 with a pretraining recipe whose data is
encoded with the run's tokenizer (e.g. ``--data.prepared=RUN/data``). The runner builds its model as usual;
``prepare_model`` then shrinks it like the pruned model (structured pruning), loads the pruned weights (task
head included) and registers a gradient hook per pruned matrix that multiplies its gradient by the 0/1
mask. With AdamW a weight whose gradient is always zero stays exactly zero: its moments m and v stay 0, so
its update m / (sqrt(v) + eps) is 0, and decoupled weight decay shrinks it by a factor (0 * anything = 0);
gradient clipping only rescales gradients. (Optimizers that add something to a zero gradient would not
keep this; the Trainer's are AdamW, Adam, SGD, all fine.) LoRA is refused: merging its update fills the
pruned weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from fromzero.compress.prune import prunable_linears
from fromzero.compress.run_output import compression_steps, write_compression_info
from fromzero.compress.structured import attention_layers, ffn_layers
from fromzero.config import load_yaml, to_dict
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import ConfigError
from fromzero.finetune.recipe import load_finetune_recipe
from fromzero.finetune.runner import finetune
from fromzero.models import family_of
from fromzero.nn.shrink import keep_heads, keep_neurons
from fromzero.pretrain.recipe import load_recipe
from fromzero.pretrain.runner import pretrain
from fromzero.pretrain.tasks import get_task
from fromzero.runs import Run, is_finetune_recipe_data, load_run

# model settings that change no tensor shape: a recovery recipe may choose its own
FREE_MODEL_KEYS = ("dropout", "attn_dropout", "init_std", "init_factor")


def zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Kept-masks (True = may change) of the prunable layers that hold exact zeros; layers without are left out."""
    masks = {}
    for name, linear in prunable_linears(model).items():
        keep = linear.weight.detach() != 0
        if not bool(keep.all()):
            masks[name] = keep
    return masks


def register_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> list[RemovableHandle]:
    """Multiply each named layer's weight gradient by its 0/1 mask (on the gradient's device and dtype)."""
    handles = []
    for name, keep in masks.items():
        def hook(grad: torch.Tensor, keep: torch.Tensor = keep) -> torch.Tensor:
            return grad * keep.to(device=grad.device, dtype=grad.dtype)
        handles.append(model.get_submodule(name).weight.register_hook(hook))
    return handles


def match_structure(model: nn.Module, pruned: nn.Module) -> None:
    """Shrink a freshly built ``model`` in place so its heads and FFN widths are ``pruned``'s."""
    fresh_attn, fresh_ffn = attention_layers(model), ffn_layers(model)
    for name, attn in attention_layers(pruned).items():
        if name in fresh_attn and fresh_attn[name].n_head > attn.n_head:
            keep_heads(fresh_attn[name], torch.arange(attn.n_head))
    for name, mlp in ffn_layers(pruned).items():
        if name in fresh_ffn and fresh_ffn[name].proj.in_features > mlp.proj.in_features:
            keep_neurons(fresh_ffn[name], torch.arange(mlp.proj.in_features))


def mask_preparer(pruned: nn.Module, masks: dict[str, torch.Tensor]):
    """The runners' ``prepare_model``: shape like ``pruned``, load its weights, keep masked weights at zero."""
    state = {k: v.detach().cpu().clone() for k, v in pruned.state_dict().items()}

    def prepare(model: nn.Module) -> nn.Module:
        match_structure(model, pruned)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[-1].strip()
            raise ConfigError(f"--recover: the recipe's model does not match the pruned run's ({first}); use "
                              "the recipe the run was trained with (same task labels and model)") from None
        register_masks(model, masks)
        return model

    return prepare


def _differing_key(ours: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    for key in sorted(set(ours) | set(theirs)):
        if key not in FREE_MODEL_KEYS and ours.get(key) != theirs.get(key):
            return key
    return None


def _same_vocab(a: Tokenizer, b: Tokenizer) -> bool:
    return a.hf.get_vocab() == b.hf.get_vocab()


def _check_finetune(source: Run, recipe_path: str, overrides: list[str]) -> Any:
    recipe = load_finetune_recipe(recipe_path, overrides)
    if not source.finetuned:
        raise ConfigError(f"--recover: {recipe_path} is a fine-tuning recipe but {source.path} is a pretrained run; "
                          "recover it with a pretraining recipe (e.g. its own config.yaml)")
    if recipe.method.name == "lora":
        raise ConfigError(f"{recipe_path}: method.name: lora would fill the pruned weights when merged; use "
                          "--method.name=full or partial for recovery")
    if recipe.task.kind != source.kind:
        raise ConfigError(f"{recipe_path}: task.kind: {recipe.task.kind} differs from the pruned run's {source.kind}")
    base = load_run(recipe.base, with_weights=False)
    key = _differing_key(to_dict(base.model_config), source.info["model"])
    if family_of(base.model_config).name != source.info["family"] or key is not None:
        raise ConfigError(f"{recipe_path}: base: {recipe.base} is not the model the pruned run was fine-tuned "
                          f"from (model.{key or 'family'} differs); use the run's own recipe")
    if not _same_vocab(base.tokenizer, source.tokenizer):
        raise ConfigError(f"{recipe_path}: base: {recipe.base}'s tokenizer differs from the pruned run's")
    return recipe


def _check_pretrain(source: Run, recipe_path: str, overrides: list[str]) -> Any:
    recipe = load_recipe(recipe_path, overrides)
    if source.finetuned:
        raise ConfigError(f"--recover: {recipe_path} is a pretraining recipe but {source.path} is a fine-tuned "
                          f"run; recover it with a fine-tuning recipe (e.g. {source.path / 'config.yaml'})")
    task = get_task(recipe.task_name(recipe_path))
    cfg = recipe.model_config(vocab_size=source.tokenizer.vocab_size, file=recipe_path,
                              fill=task.model_fields(source.tokenizer))
    key = _differing_key(to_dict(cfg), to_dict(source.model_config))
    if family_of(cfg).name != family_of(source.model_config).name or key is not None:
        raise ConfigError(f"{recipe_path}: model.{key or 'name'} differs from the pruned run's model; recovery "
                          "trains the same model (use the run's own config.yaml)")
    tokenizer_dir = recipe.data.prepared or recipe.init
    if tokenizer_dir is None:
        raise ConfigError(f"{recipe_path}: data.prepared: unset, so recovery would train a new tokenizer; read "
                          f"data encoded with the pruned run's, e.g. --data.prepared={source.path / 'data'}")
    tokenizer_file = Path(tokenizer_dir) / "tokenizer.json"
    if not tokenizer_file.is_file() or not _same_vocab(Tokenizer.load(tokenizer_file), source.tokenizer):
        raise ConfigError(f"{recipe_path}: data.{'prepared' if recipe.data.prepared else 'init'}: {tokenizer_dir} "
                          "does not hold the pruned run's tokenizer; use data encoded with it, e.g. "
                          f"--data.prepared={source.path / 'data'}")
    return recipe


def check_recovery_recipe(source: Run, recipe_path: str | Path, overrides: list[str] | None = None) -> str:
    """Validate a recovery recipe against the pruned run before any work; returns "finetune" or "pretrain"."""
    path = str(recipe_path)
    if not Path(path).is_file():
        raise ConfigError(f"--recover: {path} is not a file; pass a recipe (a fine-tuned run's config.yaml works)")
    if is_finetune_recipe_data(load_yaml(path)):
        _check_finetune(source, path, overrides or [])
        return "finetune"
    _check_pretrain(source, path, overrides or [])
    return "pretrain"


def recover(source: Run, pruned: nn.Module, steps: list[dict[str, Any]], recipe_path: str | Path,
            overrides: list[str] | None, out: str | Path, progress: bool = True) -> tuple[Path, int]:
    """Train ``pruned`` further with a recipe into ``out`` (masks kept) and add compression.json with the
    source's steps, ``steps`` and a recover step. Returns (out, training steps)."""
    kind = check_recovery_recipe(source, recipe_path, overrides)
    prepare = mask_preparer(pruned, zero_masks(pruned))
    if kind == "finetune":
        n = finetune(recipe_path, overrides, out=out, progress=progress, prepare_model=prepare).train.step
    else:
        n = pretrain(recipe_path, overrides, out=out, progress=progress, prepare_model=prepare).train.step
    if not (Path(out) / "data").exists() and (source.path / "data").is_dir():
        # recovery read prepared shards elsewhere; keep the source's held-out data beside the model, as an
        # unrecovered pruned run does (calibration and eval read it)
        shutil.copytree(source.path / "data", Path(out) / "data")
    recovered = {"op": "recover", "recipe": str(recipe_path), "overrides": list(overrides or []), "steps": n}
    write_compression_info(Path(out), source.path, [*compression_steps(source.path), *steps, recovered])
    return Path(out), n
