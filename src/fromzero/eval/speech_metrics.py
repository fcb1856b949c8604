"""Speech recognition metrics: word and character error rates, through jiwer.

With the minimum-edit (Levenshtein) alignment of each hypothesis to its reference, S substitutions,
D deletions, I insertions and N reference units (words for WER, characters for CER)::

    WER = (S + D + I) / N          summed over the whole corpus, then divided (not a mean of sentence rates)

so WER can exceed 1 (many insertions). Units are jiwer's defaults: words split on whitespace after stripping;
characters include the spaces between words. Texts are compared as given: normalise case and punctuation
before scoring (the same way for references and hypotheses). Rates are fractions (0.1 = 10%).
"""

from __future__ import annotations

from collections.abc import Sequence

import jiwer

from fromzero.errors import DataError


def _as_lists(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> tuple[list[str], list[str]]:
    refs = [references] if isinstance(references, str) else list(references)
    hyps = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    if len(refs) != len(hyps):
        raise DataError(f"speech metrics: {len(refs)} references but {len(hyps)} transcripts; "
                        "pass one transcript per reference")
    if not refs:
        raise DataError("speech metrics: no utterances to score")
    if not any(r.strip() for r in refs):
        raise DataError("speech metrics: every reference transcript is empty; an error rate needs reference words")
    return refs, hyps


def word_error_rate(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> float:
    """Corpus WER of ``hypotheses`` against ``references`` (one string or one per utterance)."""
    refs, hyps = _as_lists(references, hypotheses)
    return float(jiwer.wer(refs, hyps))


def character_error_rate(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> float:
    """Corpus CER of ``hypotheses`` against ``references`` (spaces count as characters)."""
    refs, hyps = _as_lists(references, hypotheses)
    return float(jiwer.cer(refs, hyps))


def speech_scores(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """WER, CER and the word-level edit counts (substitutions, deletions, insertions, hits, reference_words)."""
    refs, hyps = _as_lists(references, hypotheses)
    words = jiwer.process_words(refs, hyps)
    return {
        "wer": float(words.wer),
        "cer": float(jiwer.cer(refs, hyps)),
        "substitutions": float(words.substitutions),
        "deletions": float(words.deletions),
        "insertions": float(words.insertions),
        "hits": float(words.hits),
        "reference_words": float(words.substitutions + words.deletions + words.hits),
    }
