"""Word and character error rates of a CTC model on a speech set, greedy and beam decoded.

Transcripts on both sides are the normalised form (``data/speech_text.normalize_transcript``), so the rates
count recognition errors, not case or punctuation. The scores (``eval/speech_metrics.speech_scores``, jiwer)
are corpus rates: errors summed over the set, divided by its reference words (characters for CER).
``fromzero eval RUN`` recomputes them from the run directory (:func:`evaluate_speech_run`): the manifests are
found where speech.json says the run trained (or ``--data DIR``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from fromzero.data.speech_batches import SpeechSet, collate, load_speech_set
from fromzero.data.speech_text import CharVocabulary
from fromzero.errors import DataError
from fromzero.eval.eval_file import update_eval_file
from fromzero.eval.speech_metrics import speech_scores
from fromzero.runs.speech import SPEECH_INFO
from fromzero.speech.inference import SpeechRun, decode_texts, load_speech_run, log_probs_of

EXAMPLES = 5  # reference / hypothesis pairs kept in eval.json
EVAL_SPLITS = ("test", "validation")  # what training scores and `fromzero eval` recomputes


def transcribe_set(model: nn.Module, data: SpeechSet, vocab: CharVocabulary, beam_width: int = 1,
                   insertion_bonus: float = 0.0, batch_size: int = 16) -> list[str]:
    """One transcript per utterance of ``data`` (model in eval mode, batches of ``batch_size``)."""
    was_training = model.training
    model.eval()
    texts: list[str] = []
    for start in range(0, len(data), batch_size):
        stop = min(start + batch_size, len(data))
        batch = collate(data.features[start:stop], data.labels[start:stop])
        log_probs, lengths = log_probs_of(model, batch)
        texts += decode_texts(log_probs, lengths, vocab, beam_width, insertion_bonus)
    model.train(was_training)
    return texts


def score_set(model: nn.Module, data: SpeechSet, vocab: CharVocabulary, beam_width: int,
              insertion_bonus: float = 0.0) -> dict[str, Any]:
    """``{"greedy": scores, "beam": scores, "beam_width", "utterances", "voices", "examples"}`` for one split."""
    greedy = transcribe_set(model, data, vocab, 1)
    beam = transcribe_set(model, data, vocab, beam_width, insertion_bonus)
    return {"utterances": len(data), "beam_width": beam_width,
            "voices": sorted({str(r["voice"]) for r in data.rows if r.get("voice")}),
            "greedy": speech_scores(data.texts, greedy), "beam": speech_scores(data.texts, beam),
            "examples": [{"reference": r, "greedy": g, "beam": b}
                         for r, g, b in list(zip(data.texts, greedy, beam, strict=True))[:EXAMPLES]]}


def speech_data_dir(run: SpeechRun, data: str | Path | None = None) -> Path:
    """The folder of a run's manifests: ``data`` when given, else the one speech.json records (its absolute
    ``data_path``, then ``data`` as written); a one-line DataError when none holds them."""
    tried = [data] if data is not None else [run.info.get("data_path"), run.info.get("data")]
    for folder in tried:
        if folder and all((Path(folder) / f"{split}.jsonl").is_file() for split in EVAL_SPLITS):
            return Path(folder)
    where = data if data is not None else run.info.get("data")
    said = "given by --data" if data is not None else f"named by {run.path / SPEECH_INFO}"
    raise DataError(f"{where}: no test.jsonl / validation.jsonl there (the run's data folder, {said}); pass "
                    "--data DIR with the run's manifests, or rebuild them with the same `fromzero prepare-speech` "
                    "command and seed")


def evaluate_speech_run(run_dir: str | Path, splits: tuple[str, ...] = EVAL_SPLITS, beam_width: int | None = None,
                        data: str | Path | None = None) -> dict[str, Any]:
    """WER / CER (greedy and beam) of a finished speech run on its own ``splits``, written into eval.json under
    each split's name as training writes them; ``beam_width`` None: the run's ``decode.beam_width``."""
    run = load_speech_run(run_dir)
    folder = speech_data_dir(run, data)
    decode = run.info.get("decode") or {}
    width = beam_width if beam_width is not None else int(decode.get("beam_width", 1))
    scores = {}
    for split in splits:
        data_set = load_speech_set(folder / f"{split}.jsonl", run.vocab, run.mel, run.model.config.max_frames)
        scores[split] = score_set(run.model, data_set, run.vocab, width, float(decode.get("insertion_bonus", 0.0)))
    update_eval_file(run.path, scores)
    return scores
