"""Corpus reading: file kinds, ordering, and one-line errors naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fromzero.data.corpus import Document, bundled_names, iter_documents, resolve_input
from prepared_corpus import corpus_error


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_bundled_corpus_resolves_and_reads() -> None:
    path = resolve_input("bundled:pride_and_prejudice")
    assert path.is_file()
    assert "pride_and_prejudice" in bundled_names()
    docs = list(iter_documents(["bundled:pride_and_prejudice"]))
    assert len(docs) == 1
    assert docs[0].text == path.read_text(encoding="utf-8")
    assert len(docs[0].text) > 680_000
    assert docs[0].text.startswith("PRIDE AND PREJUDICE")


def test_unknown_bundled_name_lists_available() -> None:
    message = corpus_error(["bundled:moby_dick"])
    assert "bundled:moby_dick" in message
    assert "bundled:pride_and_prejudice" in message


def test_txt_jsonl_and_folder(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "one.txt").write_text("first file\n", encoding="utf-8")
    _jsonl(tmp_path / "a.jsonl", [{"text": "row one"}, {"text": "   "}, {"text": "行三", "id": 3}])
    (tmp_path / "a.jsonl").write_text((tmp_path / "a.jsonl").read_text() + "\n\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored in folders", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.txt").write_text("hidden", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")

    docs = list(iter_documents([tmp_path]))
    assert docs == [
        Document("row one", f"{tmp_path / 'a.jsonl'}:1"),
        Document("行三", f"{tmp_path / 'a.jsonl'}:3"),
        Document("first file\n", str(tmp_path / "b" / "one.txt")),
    ]


def test_text_field_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"body": "hello"}).encode() + b"\n")
    assert [d.text for d in iter_documents([path], text_field="body")] == ["hello"]
    txt = tmp_path / "bom.txt"
    txt.write_bytes(b"\xef\xbb\xbfhi")
    assert [d.text for d in iter_documents([str(txt)])] == ["hi"]


def test_malformed_json_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c" "d"}\n', encoding="utf-8")
    message = corpus_error([path])
    assert message == (f"{path}:3: malformed JSON (Expecting ',' delimiter); each line must be one JSON object")


def test_line_not_an_object(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "x.jsonl", [["a", "list"]])
    assert corpus_error([path]).startswith(f"{path}:1: expected a JSON object, got list")


def test_missing_field(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "x.jsonl", [{"text": "a"}, {"text": "b"}, {"body": "c"}])
    assert corpus_error([path]) == f"{path}:3: missing field 'text' (use --text-field to choose another)"


def test_field_not_a_string(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "x.jsonl", [{"text": "a"}, {"text": "b"}, {"text": 7}])
    assert corpus_error([path]).startswith(f"{path}:3: field 'text' must be a string")


def test_invalid_utf8_txt(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("line one\nline two café\n".encode("latin-1"))
    byte = len(b"line one\nline two caf")
    assert corpus_error([path]) == f"{path}: not valid UTF-8 at byte {byte} (line 2); convert the file to UTF-8"


def test_invalid_utf8_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    first = b'{"text": "ok"}\n'
    path.write_bytes(first + b'{"text": "caf\xe9"}\n')
    message = corpus_error([path])
    assert message.startswith(f"{path}: not valid UTF-8 at byte {len(first) + 13} (line 2)")
    assert message.endswith("convert the file to UTF-8")


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    assert corpus_error([path]) == f"{path}: no such file or directory"


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run as root, where chmod does not stop reads; simulate the OS error instead.
    path = tmp_path / "secret.txt"
    path.write_text("x", encoding="utf-8")

    def deny(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", deny)
    assert corpus_error([path]).startswith(f"{path}: permission denied")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n", encoding="utf-8")
    message = corpus_error([path])
    assert message.startswith(f"{path}: unsupported file type '.csv'")
    assert ".txt" in message and ".jsonl" in message


def test_folder_without_text_files(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    assert corpus_error([tmp_path]).startswith(f"{tmp_path}: folder has no .txt or .jsonl files")


def test_no_text_at_all(tmp_path: Path) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\t\n", encoding="utf-8")
    rows = _jsonl(tmp_path / "rows.jsonl", [{"text": ""}, {"text": "  "}])
    message = corpus_error([blank, rows])
    assert message.startswith(f"no text found in {blank}, {rows}:")
