"""Recognise a speech recognition run directory (``fromzero train-speech``) and build its model.

    run_dir/speech.json        task, family and model config, characters, log-mel settings, decoding, the data
                               folder, counts and timings
    run_dir/model.safetensors  the final weights
    run_dir/eval.json          WER / CER of the test and validation splits, greedy and beam

:func:`load_run` opens a speech run through :func:`read_speech_info` and :func:`build_speech_model` (its
``Run.speech`` is speech.json); transcribing (``speech/inference.py``) adds the vocabulary and the features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from fromzero.errors import CheckpointError
from fromzero.models import build_model, model_config
from fromzero.runs.run_json import read_run_json
from fromzero.runs.weights import load_weights

#: ``task:`` of a speech recipe and ``Run.kind`` of its run directory.
SPEECH_TASK = "speech_ctc"
SPEECH_INFO = "speech.json"
_REQUIRED = ("family", "model", "characters", "features")


def is_speech_run(path: str | Path) -> bool:
    """True for a finished speech run directory (it has speech.json)."""
    return (Path(path) / SPEECH_INFO).is_file()


def read_speech_info(path: Path) -> dict[str, Any]:
    """speech.json, with the keys loading needs checked (a missing one: the run directory is damaged)."""
    info = read_run_json(path / SPEECH_INFO)
    for key in _REQUIRED:
        if key not in info:
            raise CheckpointError(f"{path / SPEECH_INFO}: '{key}' is missing; the run directory is damaged")
    return info


def speech_model_config(path: Path, info: dict[str, Any]) -> Any:
    """The ctc-speech config written in speech.json."""
    return model_config(info["family"], info["model"], file=str(path / SPEECH_INFO))


def build_speech_model(path: Path, info: dict[str, Any], device: str = "cpu") -> nn.Module:
    """The family named in speech.json with the run's weights, in eval mode."""
    model = build_model(speech_model_config(path, info))
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{path}: model.safetensors is missing; the run directory is incomplete")
    load_weights(model, weights, str(path / SPEECH_INFO), device)
    return model.to(device).eval()
