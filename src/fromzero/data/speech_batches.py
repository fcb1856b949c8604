"""Speech manifests -> padded log-mel batches for CTC, a pure function of (seed, step, micro).

A manifest is JSONL, one utterance a line: ``{"path": "wavs/train/00001.wav", "text": "...", ...}`` (a relative
path is relative to the manifest's folder; other keys such as voice and split are kept for reports). Each WAV
must be 16-bit mono at the features' sample rate; the transcript is normalised (``speech_text``) and must keep
at least one character. Features are computed once, when the set is loaded.

A batch (what ``objectives/ctc.py`` takes)::

    features        (B, T_max, n_mels)  log-mel frames, zero past each utterance's length
    feature_lengths (B,)                frames per utterance
    labels          (B, S_max)          character ids (1..), 0 past each transcript's length
    label_lengths   (B,)

Training batches draw B utterances uniformly with replacement from a generator seeded by (seed, step, micro), so
resuming needs no replay; validation batches walk the set in order (batch i holds rows iB .. iB + B - 1, wrapping).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fromzero.data.audio_features import LogMelConfig, log_mel, read_wav
from fromzero.data.speech_text import CharVocabulary, normalize_transcript
from fromzero.errors import DataError


@dataclass
class SpeechSet:
    """Utterances in memory: features (T_i, n_mels) each, label ids, normalised texts, manifest rows."""

    features: list[torch.Tensor]
    labels: list[list[int]]
    texts: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.features)


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL speech manifest, each with ``path`` made absolute; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such speech manifest; write one with `fromzero prepare-task speech-synth DIR`")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not a JSON object ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not isinstance(row.get("text"), str):
            raise DataError(f"{path}:{number}: each line needs a string \"path\" (a WAV file) and \"text\"")
        row["path"] = str((path.parent / row["path"]).resolve())
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: the manifest lists no utterances")
    return rows


def load_speech_set(manifest: str | Path, vocab: CharVocabulary, mel: LogMelConfig = LogMelConfig(normalize=True),
                    max_frames: int | None = None) -> SpeechSet:
    """Read a manifest's WAVs into log-mel features and its transcripts into label ids."""
    out = SpeechSet([], [], [], [])
    for number, row in enumerate(read_manifest(manifest), 1):
        text = normalize_transcript(row["text"])
        if not text:
            raise DataError(f"{manifest}:{number}: the transcript {row['text']!r} has no letters to recognise")
        audio, _ = read_wav(row["path"], sample_rate=mel.sample_rate, channels=1)  # (1, N)
        feats = log_mel(audio[0], mel)  # (T, n_mels)
        if max_frames is not None and feats.shape[0] > max_frames:
            raise DataError(f"{row['path']}: {feats.shape[0]} frames exceed model.max_frames {max_frames}; "
                            "raise it or use shorter utterances")
        out.features.append(feats)
        out.labels.append(vocab.encode(text, f"{manifest}:{number}"))
        out.texts.append(text)
        out.rows.append(row)
    return out


def collate(features: list[torch.Tensor], labels: list[list[int]]) -> dict[str, torch.Tensor]:
    """Pad utterances into one CTC batch (module docstring)."""
    lengths = torch.tensor([f.shape[0] for f in features])
    padded = torch.zeros(len(features), int(lengths.max()), features[0].shape[1])  # (B, T, F)
    for i, f in enumerate(features):
        padded[i, : f.shape[0]] = f
    label_lengths = torch.tensor([len(ids) for ids in labels])
    label_ids = torch.zeros(len(labels), max(int(label_lengths.max()), 1), dtype=torch.long)  # (B, S)
    for i, ids in enumerate(labels):
        label_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return {"features": padded, "feature_lengths": lengths, "labels": label_ids, "label_lengths": label_lengths}


class SpeechBatches:
    """Random (training) or sequential (``shuffle=False``, validation) CTC batches over a :class:`SpeechSet`."""

    def __init__(self, data: SpeechSet, batch_size: int, seed: int, shuffle: bool = True) -> None:
        if len(data) == 0:
            raise DataError("a speech batch source needs at least one utterance")
        self.data, self.batch_size, self.seed, self.shuffle = data, batch_size, seed, shuffle

    def indices(self, step: int, micro: int = 0) -> list[int]:
        """Which utterances batch (step, micro) holds."""
        n = len(self.data)
        if not self.shuffle:
            return [(step * self.batch_size + i) % n for i in range(self.batch_size)]
        generator = torch.Generator().manual_seed(hash((self.seed, step, micro)) & 0x7FFF_FFFF_FFFF_FFFF)
        return torch.randint(n, (self.batch_size,), generator=generator).tolist()

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """The padded batch (step, micro): the same arguments always give the same batch."""
        idx = self.indices(step, micro)
        return collate([self.data.features[i] for i in idx], [self.data.labels[i] for i in idx])
