"""`fromzero info` and `fromzero eval` on a speech run (tone "speech", tests/speech_runs.py), the recipes of
recipes/speech/ validated and smoke-trained, and `prepare-speech --utterances` sizing the set.

Eval's numbers are checked against a transcription and a word / character edit distance done here by hand
(argmax per frame, repeats merged, blanks dropped; a textbook Levenshtein table)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fromzero.cli import main
from fromzero.data.audio_features import log_mel, read_wav
from fromzero.data.datasets.speech_corpus import sentences_for
from fromzero.errors import CheckpointError
from fromzero.models import build_model
from fromzero.runs import load_run
from fromzero.speech.inference import load_speech_run
from fromzero.speech.recipe import load_speech_recipe
from fromzero.speech.runner import train_speech
from speech_runs import TINY_SPEECH, TRANSCRIPTS, train_tiny_speech, write_tone_set

SPEECH_RECIPES = sorted((Path(__file__).parents[2] / "recipes" / "speech").glob("*.yaml"))


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("speech-commands")
    return train_tiny_speech(write_tone_set(folder / "data"), folder / "run")


def _edits(ref: list, hyp: list) -> int:
    """Levenshtein distance, the full table."""
    table = [[i + j if i * j == 0 else 0 for j in range(len(hyp) + 1)] for i in range(len(ref) + 1)]
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1,
                              table[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    return table[-1][-1]


def _greedy_by_hand(run_dir: Path, wav: Path) -> str:
    run = load_speech_run(run_dir)
    audio, _ = read_wav(wav)
    features = log_mel(audio[0], run.mel)
    with torch.no_grad():
        logits, _ = run.model(features[None], torch.tensor([features.shape[0]]))
    best = logits[0].argmax(-1).tolist()
    kept = [s for i, s in enumerate(best) if s != 0 and (i == 0 or s != best[i - 1])]
    return "".join(run.vocab.characters[s - 1] for s in kept)


def test_eval_recomputes_the_runs_scores(tone_run: Path, capsys: pytest.CaptureFixture) -> None:
    before = json.loads((tone_run / "eval.json").read_text())
    (tone_run / "eval.json").unlink()
    assert main(["eval", str(tone_run), "--split", "test", "--beam", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    scores = json.loads((tone_run / "eval.json").read_text())
    assert set(scores) == {"test"} and scores["test"]["beam_width"] == 3 and "beam 3 WER" in out
    reference = TRANSCRIPTS["test"][0]
    hypothesis = _greedy_by_hand(tone_run, tone_run.parent / "data" / "wavs" / "test" / "0.wav")
    greedy = scores["test"]["greedy"]
    assert greedy["wer"] == pytest.approx(_edits(reference.split(), hypothesis.split()) / len(reference.split()))
    assert greedy["cer"] == pytest.approx(_edits(list(reference), list(hypothesis)) / len(reference))
    assert scores["test"]["examples"][0] == {**scores["test"]["examples"][0], "reference": reference,
                                             "greedy": hypothesis}
    assert f"greedy WER {greedy['wer']:.3f} CER {greedy['cer']:.3f}" in out
    assert main(["eval", str(tone_run), "--no-progress"]) == 0  # both splits at the run's beam: as training wrote
    assert json.loads((tone_run / "eval.json").read_text()) == before


def test_eval_finds_the_data_without_the_cwd_and_with_data(tone_run: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    copy = shutil.copytree(tone_run, tmp_path / "copy")
    info = json.loads((copy / "speech.json").read_text())
    assert Path(info["data_path"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "copy", "--split", "validation", "--no-progress"]) == 0
    moved = shutil.copytree(tone_run.parent / "data", tmp_path / "moved")
    info.update(data="gone", data_path=str(tmp_path / "gone"))
    (copy / "speech.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert main(["eval", "copy", "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"error: gone: no test.jsonl / validation.jsonl there (the run's data folder, "
                                       f"named by {Path('copy') / 'speech.json'}); pass --data DIR with the run's "
                                       "manifests, or rebuild them with the same `fromzero prepare-speech` command "
                                       "and seed\n")
    assert main(["eval", "copy", "--data", str(moved), "--no-progress"]) == 0
    assert main(["eval", str(tmp_path), "--beam", "2"]) == 2
    assert "--split / --beam: score speech runs" in capsys.readouterr().err


def test_info_describes_the_run(tone_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(tone_run)]) == 0
    out = capsys.readouterr().out
    run = load_speech_run(tone_run)
    params = sum(p.numel() for p in run.model.parameters())
    scores = json.loads((tone_run / "eval.json").read_text())
    assert f"speech run: ctc-speech-tiny (ctc-speech family, {params:,} parameters): 1 blocks, d_model 32" in out
    assert "80 log-mel bins, 16000 Hz, 25 ms windows (n_fft 400) every 10 ms (hop 160)" in out
    assert f"vocabulary: 29 symbols: blank + 28 characters {run.vocab.characters!r}" in out
    assert "utterances train / validation / test 4 / 1 / 1" in out and "training: 2 steps" in out
    assert "best validation loss" in out and "at step 2" in out
    for split in ("test", "validation"):
        entry = scores[split]
        assert (f"{split} (1 utterances; voices tone): greedy WER {entry['greedy']['wer']:.3f} CER "
                f"{entry['greedy']['cer']:.3f} | beam 2 WER {entry['beam']['wer']:.3f}") in out


def test_text_commands_refuse_a_speech_run(tone_run: Path) -> None:
    with pytest.raises(CheckpointError, match="is a speech run; `fromzero generate` works on text runs"):
        load_run(tone_run).require_text("generate")


@pytest.mark.parametrize("path", SPEECH_RECIPES, ids=lambda p: p.stem)
def test_speech_recipes_validate(path: Path) -> None:
    recipe = load_speech_recipe(path)
    cfg = recipe.model_config(29, str(path))
    assert recipe.task == "speech_ctc" and cfg.n_mels == recipe.features.n_mels == 80
    assert {p.stem for p in SPEECH_RECIPES} >= {"ctc_tiny", "ctc_small"}


def test_small_recipe_is_the_small_preset_and_smoke_trains(tmp_path: Path) -> None:
    path = next(p for p in SPEECH_RECIPES if p.stem == "ctc_small")
    cfg = load_speech_recipe(path).model_config(29, str(path))
    assert (cfg.conv_channels, cfg.d_model, cfg.n_layer, cfg.n_head) == (64, 256, 6, 4)
    d, c = 256, 64
    f = ((80 + 2 - 3) // 2 + 1 + 2 - 3) // 2 + 1  # mel bins after two 3x3 stride-2 convs, padding 1: 80 -> 40 -> 20
    by_hand = (9 * c + c) + (9 * c * c + c) + (c * f * d + d)  # convs and the projection
    by_hand += 6 * (2 * 2 * d + (4 * d * d + 4 * d) + (2 * 4 * d * d + 4 * d + d))  # 2 norms, attention, MLP
    by_hand += 2 * d + (d * 29 + 29)  # final norm and the output layer
    assert sum(p.numel() for p in build_model(cfg).parameters()) == by_hand
    data = write_tone_set(tmp_path / "data")
    overrides = [o for o in TINY_SPEECH if not o.startswith("--model.")] + [f"--data.dir={data}"]
    result = train_speech(path, overrides, out=tmp_path / "run", progress=False)
    assert result.train.step == 2 and result.info["parameters"] == by_hand


def test_utterances_sets_the_sentence_count() -> None:
    for total, per in ((3000, 2), (3000, 3), (500, 1)):
        s = sentences_for(total, per)
        held = round(0.1 * s)
        assert abs((s - 2 * held) * per + 2 * held - total) <= per + 1  # what prepare_speech_synth would speak


def test_the_saved_weights_are_the_best_validation_evaluation(tone_run: Path) -> None:
    rows = [json.loads(line) for line in (tone_run / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["val_loss"], r["step"]) for r in rows if "val_loss" in r]
    info = json.loads((tone_run / "speech.json").read_text())
    assert info["best_step"] == min(evals)[1]  # the lowest validation loss, not the last step
