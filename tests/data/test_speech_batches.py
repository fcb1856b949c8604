"""Transcript normalisation and the character vocabulary (hand-written cases), manifests read into log-mel
features equal to log_mel of the file, padded CTC batches built by hand, and batches fixed by (seed, step, micro)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch

from fromzero.data.audio_features import LogMelConfig, log_mel, read_wav, write_wav
from fromzero.data.speech_batches import SpeechBatches, collate, load_speech_set, read_manifest
from fromzero.data.speech_text import CharVocabulary, normalize_transcript
from fromzero.errors import DataError


@pytest.mark.parametrize(("raw", "expected"), [
    ("Mr. Darcy's  \u201cPRIDE\u201d\u2014and prejudice!", "mr darcy's pride and prejudice"),
    ("'Tis the Caf\u00e9\u2019s  na\u00efve   end'", "tis the cafe's naive end"),
    ("don't -- stop; 42 times", "don't stop times"),
    ("  ...  ", ""),
])
def test_normalize_transcript(raw: str, expected: str) -> None:
    assert normalize_transcript(raw) == expected


def test_vocabulary_ids() -> None:
    vocab = CharVocabulary()
    assert vocab.size == 29
    assert vocab.encode("ab 'z") == [3, 4, 1, 2, 28]  # blank 0, space 1, apostrophe 2, a..z 3..28
    assert vocab.decode([3, 0, 4, 1, 1, 28]) == "ab z"  # blanks skipped, spaces tidied
    assert vocab.decode(vocab.encode(string.ascii_lowercase)) == string.ascii_lowercase
    with pytest.raises(DataError, match="clip.jsonl:3: character 'A'"):
        vocab.encode("A", "clip.jsonl:3")


def test_collate_pads_by_hand() -> None:
    a, b = torch.ones(3, 2), 2 * torch.ones(5, 2)
    batch = collate([a, b], [[4, 5], [6]])
    expected = torch.zeros(2, 5, 2)
    expected[0, :3], expected[1] = 1.0, 2.0
    assert torch.equal(batch["features"], expected)
    assert batch["feature_lengths"].tolist() == [3, 5] and batch["label_lengths"].tolist() == [2, 1]
    assert batch["labels"].tolist() == [[4, 5], [6, 0]]


def _tone_set(folder: Path, n: int = 4) -> Path:
    rows = []
    for i in range(n):
        t = torch.arange(1600 * (i + 2)) / 16000
        write_wav(folder / f"w{i}.wav", 0.2 * torch.sin(2 * torch.pi * (300 + 100 * i) * t), 16000)
        rows.append({"path": f"w{i}.wav", "text": f"Tone {string.ascii_lowercase[i]}!", "voice": "v"})
    manifest = folder / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest


def test_manifest_becomes_features_and_labels(tmp_path: Path) -> None:
    manifest = _tone_set(tmp_path)
    mel = LogMelConfig(n_mels=20, normalize=True)
    data = load_speech_set(manifest, CharVocabulary(), mel)
    assert len(data) == 4 and data.texts[1] == "tone b"
    assert data.labels[1] == [22, 17, 16, 7, 1, 4]  # t o n e _ b
    audio, _ = read_wav(tmp_path / "w2.wav")
    torch.testing.assert_close(data.features[2], log_mel(audio[0], mel))
    assert data.features[2].shape == (1 + 1600 * 4 // 160, 20)


def test_batches_are_fixed_by_seed_step_micro(tmp_path: Path) -> None:
    data = load_speech_set(_tone_set(tmp_path), CharVocabulary(), LogMelConfig(n_mels=20))
    source = SpeechBatches(data, batch_size=3, seed=7)
    assert torch.equal(source.batch(5, 1)["features"], SpeechBatches(data, 3, seed=7).batch(5, 1)["features"])
    drawn = {tuple(source.indices(step, micro)) for step in range(20) for micro in range(2)}
    assert len(drawn) > 10  # steps and micro-batches draw different utterances
    val = SpeechBatches(data, batch_size=3, seed=0, shuffle=False)
    assert val.indices(0) == [0, 1, 2] and val.indices(1) == [3, 0, 1]
    batch = source.batch(3)
    i = source.indices(3)[0]
    n = data.features[i].shape[0]
    assert torch.equal(batch["features"][0, :n], data.features[i]) and int(batch["feature_lengths"][0]) == n


def test_manifest_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.wav", "text": "hi"}\n{"text": "no path"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="bad.jsonl:2: each line needs"):
        read_manifest(bad)
    with pytest.raises(DataError, match="no such speech manifest"):
        read_manifest(tmp_path / "none.jsonl")
    write_wav(tmp_path / "s.wav", torch.zeros(2, 1600), 16000)  # stereo
    (tmp_path / "st.jsonl").write_text('{"path": "s.wav", "text": "hi"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="s.wav: 16000 Hz with 2 channel"):
        load_speech_set(tmp_path / "st.jsonl", CharVocabulary())
    (tmp_path / "e.jsonl").write_text('{"path": "s.wav", "text": "42!"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="e.jsonl:1: the transcript '42!' has no letters"):
        load_speech_set(tmp_path / "e.jsonl", CharVocabulary())
