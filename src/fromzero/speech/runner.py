"""A speech recognition run, end to end: recipe -> manifests -> log-mel batches -> ctc-speech model -> the one
Trainer with the CTC objective -> run directory -> test WER / CER, greedy and beam.

    run_dir/config.yaml         the resolved recipe (``fromzero train-speech run_dir/config.yaml`` repeats it)
    run_dir/speech.json         family and model config, characters, log-mel settings, decoding, counts, timings
    run_dir/model.safetensors   the final weights
    run_dir/eval.json           "test" (held-out sentences and voices) and "validation" (held-out sentences,
                                training voices): WER, CER and edit counts, greedy and beam; a few examples
    run_dir/metrics.jsonl, summary.json, tensorboard/, plots/; checkpoints/ while training

Batches are a pure function of (seed, step, micro) (``data/speech_batches.py``), so a resumed run continues
bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model

from fromzero.atomic import write_text, write_with
from fromzero.config import dump_yaml, to_dict
from fromzero.data.speech_batches import SpeechBatches, SpeechSet, load_speech_set
from fromzero.data.speech_text import CharVocabulary
from fromzero.errors import ConfigError
from fromzero.models import build_model, family_of
from fromzero.objectives.ctc import CTCObjective
from fromzero.runs import open_run_dir, run_dir_for
from fromzero.runs.speech import SPEECH_INFO
from fromzero.speech.evaluate import score_set
from fromzero.speech.recipe import SPLITS, SpeechRecipe, load_speech_recipe, recipe_dict
from fromzero.train.best_state import BestStateHooks
from fromzero.train.checkpoint import latest_checkpoint
from fromzero.train.distributed import world
from fromzero.train.loggers import plot_losses
from fromzero.train.trainer import Trainer, TrainResult


@dataclass
class SpeechResult:
    run_dir: Path
    info: dict[str, Any]
    scores: dict[str, Any]  # eval.json: {"test": ..., "validation": ...}
    train: TrainResult


def _load_sets(recipe: SpeechRecipe, vocab: CharVocabulary, max_frames: int) -> dict[str, SpeechSet]:
    mel = recipe.features.log_mel()
    return {split: load_speech_set(recipe.data.manifest(split), vocab, mel, max_frames) for split in SPLITS}


def train_speech(recipe_path: str | Path | None, overrides: list[str] | None = None, *,
                 out: str | Path | None = None, resume: bool = False, progress: bool = True) -> SpeechResult:
    """Run a speech recipe into a run directory and score it on its test and validation manifests."""
    recipe = load_speech_recipe(recipe_path, overrides)
    file = str(recipe_path or "<overrides>")
    if world().distributed:
        raise ConfigError(f"{file}: speech runs train on one process; run `fromzero train-speech` without torchrun")
    vocab = CharVocabulary()
    cfg = recipe.model_config(vocab.size, file)
    run_dir = run_dir_for(out, recipe.out, recipe_path, "speech")
    saved = recipe_dict(recipe)
    open_run_dir(run_dir, saved, resume, ("model", "data", "features", "seed"))
    sets = _load_sets(recipe, vocab, cfg.max_frames)  # every manifest and WAV checked before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", dump_yaml(saved))
    torch.manual_seed(recipe.seed)
    model = build_model(cfg)
    train_src = SpeechBatches(sets["train"], recipe.train.batch_size, recipe.seed)
    val_src = SpeechBatches(sets["validation"], recipe.train.batch_size, recipe.seed + 1, shuffle=False)
    hooks = BestStateHooks(model)  # keep the lowest validation CTC loss, not the last step's weights
    trainer = Trainer(model, CTCObjective(), train_src, val_src, recipe.train, recipe.optim, run_dir,
                      hooks=hooks, progress=progress)
    t0 = time.perf_counter()
    result = trainer.fit(resume=resume and latest_checkpoint(trainer.ckpt_dir) is not None)
    hooks.restore_best()
    model = trainer.export_model().cpu().eval()
    info = {"task": "speech_ctc", "family": family_of(cfg).name, "model": to_dict(cfg),
            "characters": vocab.characters, "features": dataclasses.asdict(recipe.features.log_mel()),
            "decode": to_dict(recipe.decode), "data": recipe.data.dir, "seed": recipe.seed,
            "data_path": str(Path(recipe.data.dir).resolve()),  # where `fromzero eval` finds the manifests
            "parameters": sum(p.numel() for p in model.parameters()),
            "utterances": {split: len(data) for split, data in sets.items()}, "steps": result.step,
            "best_step": hooks.best_step,
            "train_loss": result.train_loss, "val_loss": result.val_loss,
            "train_wall_s": time.perf_counter() - t0, "device": str(trainer.device)}
    write_with(run_dir / "model.safetensors", lambda tmp: save_model(model, str(tmp)))
    write_text(run_dir / SPEECH_INFO, json.dumps(info, indent=1))
    decode = recipe.decode
    scores = {split: score_set(model, sets[split], vocab, decode.beam_width, decode.insertion_bonus)
              for split in ("test", "validation")}
    write_text(run_dir / "eval.json", json.dumps(scores, indent=1))
    plot_losses(run_dir / "metrics.jsonl", run_dir / "plots" / "loss.png", title=run_dir.name)
    return SpeechResult(run_dir, info, scores, result)
