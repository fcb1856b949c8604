"""Speech runs end to end. With espeak-ng: a small synthesized set (test sentences and voices held out), the
recipe smoke-trained (the CTC loss falls), eval.json scored greedy and beam, and ``fromzero transcribe``.
Without espeak-ng that test skips locally and fails when CI=true (scripts/install_espeak.sh). The rest uses
tone "speech" (tests/speech_runs.py) and runs everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fromzero.cli import main
from fromzero.data.audio_features import log_mel, read_wav
from fromzero.data.datasets.speech_corpus import SpeechSynthOptions, corpus_sentences, prepare_speech_synth
from fromzero.errors import CheckpointError, ConfigError
from fromzero.nn.ctc import ctc_beam_decode, ctc_greedy_decode
from fromzero.speech.inference import load_speech_run
from fromzero.speech.runner import train_speech
from fromzero.train.loggers import read_metrics
from speech_runs import require_espeak, train_tiny_speech, write_tone_set

RECIPE = Path(__file__).parents[2] / "recipes" / "speech" / "ctc_tiny.yaml"




def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_synthesized_set_trains_and_scores(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    require_espeak()
    opts = SpeechSynthOptions(sentences=12, per_sentence=1, held_out=0.17)
    paths = prepare_speech_synth(tmp_path / "data", seed=3, options=opts)
    rows = {split: _rows(path) for split, path in paths.items()}
    assert [len(rows[s]) for s in ("train", "validation", "test")] == [8, 2, 2]
    texts = {split: {r["text"] for r in r_} for split, r_ in rows.items()}
    assert not texts["test"] & texts["train"] and not texts["validation"] & texts["train"]
    assert {r["voice"] for r in rows["test"]} <= set(opts.test_voices)
    assert {r["voice"] for r in rows["train"] + rows["validation"]} <= set(opts.voices)
    audio, _ = read_wav(tmp_path / "data" / rows["test"][0]["path"])  # 16 kHz mono or it raises
    assert 0.5 < audio.shape[1] / 16000 < 6
    run = tmp_path / "run"
    assert main(["train-speech", str(RECIPE), "--out", str(run), "--no-progress", f"--data.dir={tmp_path / 'data'}",
                 "--train.max_steps=30", "--train.batch_size=4", "--train.eval_every=30", "--train.eval_batches=1",
                 "--train.log_every=1", "--train.threads=1", "--optim.warmup_steps=5", "--decode.beam_width=4"]) == 0
    losses = [m["loss"] for m in read_metrics(run / "metrics.jsonl") if "loss" in m]
    assert losses[-1] < 0.8 * losses[0]  # CTC's first drop (towards blanks everywhere)
    scores = json.loads((run / "eval.json").read_text())
    assert scores["test"]["voices"] == sorted({r["voice"] for r in rows["test"]})
    for split in ("test", "validation"):
        assert scores[split]["utterances"] == 2 and scores[split]["beam_width"] == 4
        for way in ("greedy", "beam"):
            assert scores[split][way]["wer"] >= 0 and scores[split][way]["reference_words"] > 0
    capsys.readouterr()
    assert main(["transcribe", str(run), str(tmp_path / "data" / rows["test"][0]["path"]), "--beam", "2"]) == 0
    assert capsys.readouterr().out.endswith("\n")


def test_corpus_sentences_skip_digits_and_titles() -> None:
    text = "Mr. Darcy bowed to them all. It was 1811 then! She smiled at her sister; \u201cOh, how lovely it is.\u201d"
    assert corpus_sentences(text) == ["she smiled at her sister", "oh how lovely it is"]


def test_options_are_checked_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--test-voices: en-us also in --voices"):
        prepare_speech_synth(tmp_path / "x", options=SpeechSynthOptions(voices=("en-us",), test_voices=("en-us",)))
    with pytest.raises(ConfigError, match="--sentences: 2 is too few"):
        prepare_speech_synth(tmp_path / "x", options=SpeechSynthOptions(sentences=2))
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tone")
    return train_tiny_speech(write_tone_set(folder / "data"), folder / "run")


def test_transcribe_decodes_the_runs_own_output(tone_run: Path, capsys: pytest.CaptureFixture) -> None:
    """What `fromzero transcribe` prints equals log-mel -> model -> greedy / beam decoding done here by hand."""
    run = load_speech_run(tone_run)
    wav = tone_run.parent / "data" / "wavs" / "test" / "0.wav"
    audio, _ = read_wav(wav)
    with torch.no_grad():
        logits, lengths = run.model(log_mel(audio[0], run.mel)[None], torch.tensor([1 + audio.shape[1] // 160]))
    log_probs = torch.log_softmax(logits, -1)
    for beam, ids in ((1, ctc_greedy_decode(log_probs[0])), (3, ctc_beam_decode(log_probs[0], beam_width=3))):
        capsys.readouterr()
        assert main(["transcribe", str(tone_run), str(wav), "--beam", str(beam)]) == 0
        assert capsys.readouterr().out == run.vocab.decode(ids) + "\n"
    info = json.loads((tone_run / "speech.json").read_text())
    assert info["family"] == "ctc-speech" and info["characters"] == run.vocab.characters
    assert set(json.loads((tone_run / "eval.json").read_text())) == {"test", "validation"}


def test_a_text_model_is_refused(tmp_path: Path) -> None:
    data = write_tone_set(tmp_path / "data")
    with pytest.raises(ConfigError, match="model.name: gpt-char-tiny is a gpt model"):
        train_speech(RECIPE, [f"--data.dir={data}", "--model.name=gpt-char-tiny"], out=tmp_path / "run",
                     progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(CheckpointError, match="not a speech run"):
        load_speech_run(tmp_path)
