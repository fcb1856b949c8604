"""Files sent inside JSON requests: base64 text -> bytes, with one-line errors (image and speech routes)."""

from __future__ import annotations

import base64
import binascii

from fromzero.errors import DataError


def base64_bytes(text: str, where: str, what: str) -> bytes:
    """The bytes of standard base64 text (``data:<type>;base64,`` prefix allowed); a DataError naming ``where``
    otherwise. ``what``: the kind of file expected ("image", "WAV"), for the message."""
    if text.startswith("data:") and ";base64," in text[:100]:
        text = text.split(";base64,", 1)[1]
    if not text:
        raise DataError(f"{where}: empty; send {_article(what)} {what} file's bytes as base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        raise DataError(f"{where}: not valid base64 (standard alphabet A-Z a-z 0-9 + /, '=' padding, no line "
                        f"breaks); send the {what} file's bytes base64-encoded") from None


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
