"""Transcripts for character CTC: one normaliser and the character vocabulary (blank = id 0).

    normalize_transcript("Mr. Darcy's  \u201cPRIDE\u201d—and 2 prejudices!") == "mr darcy's pride and prejudices"

Lowercase; accents dropped (NFKD, combining marks removed); every character other than a-z and the apostrophe
becomes a space (digits too: a synthesiser would say them as words the transcript does not have, so the corpus
preparation skips sentences with digits); an apostrophe is kept only between two letters (``darcy's``,
``don't``; quote marks are dropped); runs of spaces become one, and the ends are stripped. References and
hypotheses pass through the same function before WER/CER.

The vocabulary: id 0 the CTC blank, 1 the space, 2 the apostrophe, 3..28 the letters a..z (V = 29).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

from fromzero.errors import DataError

BLANK = 0
CHARACTERS = " '" + string.ascii_lowercase  # ids 1..28; id 0 is the blank
_OTHER = re.compile(r"[^a-z']+")
_LOOSE_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")


def normalize_transcript(text: str) -> str:
    """The transcript form the model spells: lowercase letters, single spaces, inner apostrophes."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = _OTHER.sub(" ", text)
    text = _LOOSE_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())


class CharVocabulary:
    """Characters <-> ids for CTC; id 0 is the blank, which no character maps to."""

    def __init__(self, characters: str = CHARACTERS) -> None:
        if len(set(characters)) != len(characters):
            raise DataError(f"a character vocabulary lists each character once, got {characters!r}")
        self.characters = characters
        self._ids = {ch: i + 1 for i, ch in enumerate(characters)}

    @property
    def size(self) -> int:
        """Symbols the model outputs: the characters plus the blank."""
        return len(self.characters) + 1

    def encode(self, text: str, where: str = "transcript") -> list[int]:
        """Ids of a normalised transcript; a character outside the vocabulary is a DataError naming ``where``."""
        ids = []
        for ch in text:
            if ch not in self._ids:
                raise DataError(f"{where}: character {ch!r} is not in the vocabulary; normalise the transcript "
                                "(normalize_transcript) before encoding it")
            ids.append(self._ids[ch])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of blank-free ids (a blank or unknown id is skipped), spaces tidied."""
        text = "".join(self.characters[i - 1] for i in ids if 0 < int(i) <= len(self.characters))
        return " ".join(text.split())
