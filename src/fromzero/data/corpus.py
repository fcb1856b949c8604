"""Raw text in: files, folders and datasets -> :class:`Document` stream.

:func:`input_files` expands the inputs to files in reading order, :func:`iter_file_documents` reads
one file (how each kind is stored is ``document_formats``), :func:`iter_documents` chains them.
Every problem a user can cause (missing file, bad encoding, malformed JSON line, missing field, an
unreadable Parquet file, a null row) is a one-line :class:`DataError` naming the file, the line or
row where there is one, and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fromzero.data.document_formats import (
    InputFile,
    folder_files,
    input_file,
    iter_column_batches,
    iter_lines,
    read_all,
)
from fromzero.errors import DataError

BUNDLED_PREFIX = "bundled:"
FORTUNE_PREFIX = "fortune:"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes some fortune files carry (fortunes-zh does)
_BOM = "\ufeff"


@dataclass(frozen=True)
class Document:
    """One document: its text and where it came from (``path``, ``path:LINE`` or ``path:row N``)."""

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


def _decode(data: bytes, file: InputFile, line: int = 1, offset: int = 0) -> str:
    """Strict UTF-8. ``data`` starts at byte ``offset``, line ``line`` of the file; errors name both."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line += data[: err.start].count(b"\n")
        where = f"byte {offset + err.start}" + (" of the decompressed text" if file.compression else "")
        raise DataError(f"{file.path}: not valid UTF-8 at {where} (line {line}); convert the file to UTF-8") from None


def _iter_txt(file: InputFile) -> Iterator[Document]:
    text = _decode(read_all(file), file).removeprefix(_BOM)
    yield Document(text=text, source=str(file.path))


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


def _iter_jsonl(file: InputFile, text_field: str) -> Iterator[Document]:
    # Line by line (json.loads per line: as fast as pyarrow.json's streaming reader, and it knows the line).
    offset = 0
    for number, data in enumerate(iter_lines(file), start=1):
        raw = _decode(data, file, line=number, offset=offset)
        offset += len(data)
        if number == 1:
            raw = raw.removeprefix(_BOM)
        if raw.strip():  # a blank line is no document
            where = f"{file.path}:{number}"
            yield Document(text=_jsonl_text(raw, where, text_field), source=where)


def _iter_columns(file: InputFile, text_field: str) -> Iterator[Document]:
    row = 0
    for texts in iter_column_batches(file, text_field):
        for text in texts:
            row += 1
            yield Document(text=text, source=f"{file.path}:row {row}")


def _iter_fortunes(file: InputFile) -> Iterator[Document]:
    """A fortune(6) file: entries separated by lines holding only ``%``, each entry one document."""
    text = _ANSI.sub("", _decode(read_all(file), file).removeprefix(_BOM))
    line = 1
    for entry in re.split(r"^%\n", text, flags=re.MULTILINE):
        if entry.strip():  # blank entries are separator artefacts, not documents
            yield Document(text=entry.strip("\n"), source=f"{file.path}:{line}")
        line += entry.count("\n") + 1


def iter_file_documents(file: InputFile, text_field: str = "text") -> Iterator[Document]:
    """Every document of one file in order, empty and whitespace-only ones included.

    ``.txt``: the whole file (source ``path``); ``.jsonl``: one per non-blank line, its text in
    ``text_field`` (``path:LINE``); Parquet / Arrow: one per row of column ``text_field``
    (``path:row N``, 1-based); fortune: one per ``%``-separated entry (``path:LINE``).
    """
    if file.kind == "txt":
        return _iter_txt(file)
    if file.kind == "jsonl":
        return _iter_jsonl(file, text_field)
    if file.kind in ("parquet", "arrow"):
        return _iter_columns(file, text_field)
    if file.kind == "fortune":
        return _iter_fortunes(file)
    raise ValueError(f"unknown input kind {file.kind!r}")


def input_files(inputs: Sequence[str | Path]) -> list[InputFile]:
    """Every input resolved and expanded to files, in the order :func:`iter_documents` reads them.

    An input is a file (see ``document_formats.SUPPORTED``), a folder (searched recursively, sorted,
    hidden entries skipped; a ``datasets`` save_to_disk folder gives its own Arrow files),
    ``bundled:NAME``, or ``fortune:PATH`` (a fortune(6) file).
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    files: list[InputFile] = []
    for spec in inputs:
        if isinstance(spec, str) and spec.startswith(FORTUNE_PREFIX):
            path = Path(spec[len(FORTUNE_PREFIX) :])
            if not path.is_file():
                raise DataError(f"{spec}: no such fortune file (Chinese ones: `apt-get install fortunes-zh`, "
                                "then fortune:/usr/share/games/fortunes/chinese)")
            files.append(InputFile(path, "fortune"))
            continue
        path = resolve_input(spec)
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        files += folder_files(path) if path.is_dir() else [input_file(path)]
    return files


def iter_documents(inputs: Sequence[str | Path], text_field: str = "text") -> Iterator[Document]:
    """Yield the non-empty documents of ``inputs`` in a deterministic order.

    Inputs as :func:`input_files` takes them; each file read by :func:`iter_file_documents`. Text
    must be UTF-8. Whitespace-only documents are skipped; if nothing at all remains a
    :class:`DataError` is raised.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    found = 0
    for file in input_files(inputs):
        for doc in iter_file_documents(file, text_field):
            if doc.text.strip():
                found += 1
                yield doc
    if not found:
        names = ", ".join(str(s) for s in inputs) or "<no inputs>"
        raise DataError(
            f"no text found in {names}: every document is empty or whitespace-only; add text or point at other files"
        )
