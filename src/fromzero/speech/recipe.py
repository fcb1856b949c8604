"""The speech recognition recipe: one YAML file, validated into typed sections before any work starts.

    task: speech_ctc
    seed: 0
    model: {name: ctc-speech-tiny}                 # preset or family + field overrides
    data: {dir: data/speech-synth}                 # train.jsonl / validation.jsonl / test.jsonl manifests
    features: {n_mels: 80}                         # log-mel settings (data/audio_features.LogMelConfig)
    decode: {beam_width: 8}                        # test-set decoding: greedy and prefix beam search
    train: {max_steps: 3000, batch_size: 16}
    optim: {lr: 1e-3}

Every key can be overridden on the command line (``--train.max_steps=50``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fromzero.config import apply_overrides, field, from_dict, load_yaml, require, to_dict
from fromzero.data.audio_features import LogMelConfig
from fromzero.errors import ConfigError
from fromzero.models import data_filled_config, family_of
from fromzero.runs.speech import SPEECH_TASK
from fromzero.train.optim import OptimConfig
from fromzero.train.trainer import TrainConfig

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SpeechDataConfig:
    """Where the manifests are: ``dir`` holds train.jsonl, validation.jsonl and test.jsonl."""

    dir: str = field("data/speech-synth", help="folder from `fromzero prepare-task speech-synth DIR`")

    def manifest(self, split: str) -> Path:
        return Path(self.dir) / f"{split}.jsonl"


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel features (16 kHz, 25 ms windows every 10 ms), normalised per utterance."""

    n_mels: int = field(80, help="mel bins")
    normalize: bool = field(True, help="per-utterance mean/variance normalisation of each mel bin")

    def __post_init__(self) -> None:
        require(self.n_mels > 0, "n_mels", "must be positive")

    def log_mel(self) -> LogMelConfig:
        return LogMelConfig(n_mels=self.n_mels, normalize=self.normalize)


@dataclass(frozen=True)
class DecodeConfig:
    """How the test set (and ``fromzero transcribe``) turns per-frame probabilities into text."""

    beam_width: int = field(8, help="prefix beam search width (1 = greedy)")
    insertion_bonus: float = field(0.0, help="added to a hypothesis' log-prob per character")

    def __post_init__(self) -> None:
        require(self.beam_width >= 1, "beam_width", f"must be >= 1, got {self.beam_width}")


@dataclass(frozen=True)
class SpeechRecipe:
    """A complete CTC speech recognition run."""

    task: Literal["speech_ctc"] = field(SPEECH_TASK, help="speech_ctc (what routes it to `train-speech`)")
    model: dict[str, Any] = field(default_factory=lambda: {"name": "ctc-speech-tiny"},
                                  help="name: a ctc-speech preset or the family, plus field overrides")
    data: SpeechDataConfig = field(default_factory=SpeechDataConfig, help="the manifests")
    features: FeatureConfig = field(default_factory=FeatureConfig, help="log-mel features")
    decode: DecodeConfig = field(default_factory=DecodeConfig, help="test-set decoding")
    train: TrainConfig = field(default_factory=TrainConfig, help="loop settings")
    optim: OptimConfig = field(default_factory=OptimConfig, help="optimizer and schedule")
    seed: int = field(0, help="fixes init, batches and dropout")
    out: str | None = field(None, help="run directory (default: runs/<recipe name>)")

    def model_config(self, vocab_size: int, file: str) -> Any:
        """The ctc-speech config with vocab_size and n_mels from the data (a disagreeing value is an error)."""
        name = self.model.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{file}: model.name: required (a preset such as 'ctc-speech-tiny')")
        values = {k: v for k, v in self.model.items() if k != "name"}
        cfg = data_filled_config(name, values, {"vocab_size": vocab_size, "n_mels": self.features.n_mels}, file)
        if family_of(cfg).name != "ctc-speech":
            raise ConfigError(f"{file}: model.name: {name} is a {family_of(cfg).name} model; a speech run needs "
                              "ctc-speech-tiny, ctc-speech-small or the ctc-speech family")
        return cfg


def load_speech_recipe(path: str | Path | None, overrides: list[str] | None = None) -> SpeechRecipe:
    """Read, override and validate a speech recipe; every error names the file and the key."""
    file = str(path) if path is not None else "<overrides>"
    data = load_yaml(path) if path is not None else {"task": SPEECH_TASK}
    return from_dict(SpeechRecipe, apply_overrides(data, overrides or []), file=file)


def recipe_dict(recipe: SpeechRecipe) -> dict[str, Any]:
    """The resolved recipe as saved in config.yaml (loads back with :func:`load_speech_recipe`)."""
    return to_dict(recipe)
