"""Raw text in: .txt files, .jsonl files and folders of them -> :class:`Document` stream.

Every problem a user can cause (missing file, bad encoding, malformed JSON
line, missing field) is a one-line :class:`DataError` naming the file, the
line where there is one, and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fromzero.errors import DataError

BUNDLED_PREFIX = "bundled:"
FORTUNE_PREFIX = "fortune:"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes some fortune files carry (fortunes-zh does)
SUFFIXES = (".txt", ".jsonl")
_BOM = "\ufeff"


@dataclass(frozen=True)
class Document:
    """One document: its text and where it came from (``path`` or ``path:LINE``)."""

    text: str
    source: str


def _samples_dir() -> Path:
    # The package is installed as plain files (not zipped), so the Traversable is a real path.
    return Path(str(resources.files("fromzero.data") / "samples"))


def bundled_names() -> list[str]:
    """Names usable as ``bundled:NAME`` (the .txt/.jsonl files shipped in ``fromzero/data/samples``)."""
    return sorted(p.stem for p in _samples_dir().iterdir() if p.suffix in (".txt", ".jsonl"))


def resolve_input(spec: str | Path) -> Path:
    """``bundled:NAME`` -> the packaged sample ``samples/NAME.txt`` (or ``.jsonl``); else ``Path(spec)``.

    Bundled: ``pride_and_prejudice`` (Jane Austen, 1813), ``persuasion`` (Jane Austen, 1817; text from
    Debian's r-cran-janeaustenr) and ``tang_song_poems`` (the 313 Tang and 95
    Song poems of Debian's fortunes-zh, one JSONL document each); all public domain.
    """
    if isinstance(spec, str) and spec.startswith(BUNDLED_PREFIX):
        name = spec[len(BUNDLED_PREFIX) :]
        path = _samples_dir() / f"{name}.txt"
        if not path.is_file():
            path = path.with_suffix(".jsonl")
        if not path.is_file():
            available = ", ".join(BUNDLED_PREFIX + n for n in bundled_names())
            raise DataError(f"{spec}: unknown bundled corpus; available: {available}")
        return path
    return Path(spec)


def _decode(data: bytes, path: Path, line: int = 1, offset: int = 0) -> str:
    """Strict UTF-8. ``data`` starts at byte ``offset``, line ``line`` of the file; errors name both."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line += data[: err.start].count(b"\n")
        byte = offset + err.start
        raise DataError(f"{path}: not valid UTF-8 at byte {byte} (line {line}); convert the file to UTF-8") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError:
        raise DataError(f"{path}: permission denied; make the file readable") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None


def _iter_txt(path: Path) -> Iterator[Document]:
    text = _decode(_read_bytes(path), path).removeprefix(_BOM)
    yield Document(text=text, source=str(path))


def _jsonl_text(raw: str, where: str, text_field: str) -> str:
    """The text field of one JSONL line, or a DataError naming ``where`` (``path:LINE``)."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: malformed JSON ({err.msg}); each line must be one JSON object") from None
    if not isinstance(obj, dict):
        kind = type(obj).__name__
        raise DataError(f"{where}: expected a JSON object, got {kind}; each line must be one JSON object")
    if text_field not in obj:
        raise DataError(f"{where}: missing field '{text_field}' (use --text-field to choose another)")
    text = obj[text_field]
    if not isinstance(text, str):
        raise DataError(f"{where}: field '{text_field}' must be a string, got {type(text).__name__}")
    return text


def _iter_jsonl(path: Path, text_field: str) -> Iterator[Document]:
    # Line by line, so a large JSONL file is never held in memory at once.
    try:
        fh = path.open("rb")
    except PermissionError:
        raise DataError(f"{path}: permission denied; make the file readable") from None
    with fh:
        offset = 0
        for number, data in enumerate(fh, start=1):
            raw = _decode(data, path, line=number, offset=offset)
            offset += len(data)
            if number == 1:
                raw = raw.removeprefix(_BOM)
            if raw.strip():
                text = _jsonl_text(raw, f"{path}:{number}", text_field)
                yield Document(text=text, source=f"{path}:{number}")


def _folder_files(folder: Path) -> list[Path]:
    """Every .txt/.jsonl file below ``folder``, sorted; hidden files and folders are skipped."""
    try:
        files = [
            p
            for p in folder.rglob("*")
            if p.suffix.lower() in SUFFIXES
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        ]
    except PermissionError:
        raise DataError(f"{folder}: permission denied; make the folder readable") from None
    if not files:
        raise DataError(f"{folder}: folder has no .txt or .jsonl files; add some or point at a file")
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _iter_fortunes(path: Path) -> Iterator[Document]:
    """A fortune(6) file: entries separated by lines holding only ``%``, each entry one document."""
    text = _ANSI.sub("", _decode(_read_bytes(path), path).removeprefix(_BOM))
    line = 1
    for entry in re.split(r"^%\n", text, flags=re.MULTILINE):
        if entry.strip():
            yield Document(text=entry.strip("\n"), source=f"{path}:{line}")
        line += entry.count("\n") + 1


def _iter_file(path: Path, text_field: str) -> Iterator[Document]:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        yield from _iter_txt(path)
    elif suffix == ".jsonl":
        yield from _iter_jsonl(path, text_field)
    else:
        raise DataError(
            f"{path}: unsupported file type '{path.suffix}'; use .txt (plain text) or .jsonl (one JSON object per line)"
        )


def iter_documents(inputs: Sequence[str | Path], text_field: str = "text") -> Iterator[Document]:
    """Yield the non-empty documents of ``inputs`` in a deterministic order.

    Each input is a ``.txt`` file (the whole file is one document), a
    ``.jsonl`` file (one document per non-blank line, its text in
    ``text_field``), a folder (searched recursively, sorted, for both kinds),
    ``bundled:NAME``, or ``fortune:PATH`` (a fortune(6) file: one document per
    ``%``-separated entry, ANSI colour codes removed). Files must be UTF-8. Whitespace-only documents are
    skipped; if nothing at all remains a :class:`DataError` is raised.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    found = 0
    for spec in inputs:
        if isinstance(spec, str) and spec.startswith(FORTUNE_PREFIX):
            path = Path(spec[len(FORTUNE_PREFIX):])
            if not path.is_file():
                raise DataError(f"{spec}: no such fortune file (Chinese ones: `apt-get install fortunes-zh`, "
                                "then fortune:/usr/share/games/fortunes/chinese)")
            for doc in _iter_fortunes(path):
                found += 1
                yield doc
            continue
        path = resolve_input(spec)
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        files = _folder_files(path) if path.is_dir() else [path]
        for file in files:
            for doc in _iter_file(file, text_field):
                if doc.text.strip():
                    found += 1
                    yield doc
    if not found:
        names = ", ".join(str(s) for s in inputs) or "<no inputs>"
        raise DataError(
            f"no text found in {names}: every document is empty or whitespace-only; add text or point at other files"
        )
