"""Word and character error rates of a CTC model on a speech set, greedy and beam decoded.

Transcripts on both sides are the normalised form (``data/speech_text.normalize_transcript``), so the rates
count recognition errors, not case or punctuation. The scores (``eval/speech_metrics.speech_scores``, jiwer)
are corpus rates: errors summed over the set, divided by its reference words (characters for CER).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fromzero.data.speech_batches import SpeechSet, collate
from fromzero.data.speech_text import CharVocabulary
from fromzero.eval.speech_metrics import speech_scores
from fromzero.speech.inference import decode_texts, log_probs_of

EXAMPLES = 5  # reference / hypothesis pairs kept in eval.json


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
