"""Document formats: every file kind gives the documents written into it, in order; bad files are one-line errors.

The references are the texts the tests write, through independent writers: the ``gzip`` module,
``zstandard``, pyarrow's Parquet and IPC writers, and ``datasets``' own ``save_to_disk``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from fromzero.data.corpus import Document, InputFile, input_files, iter_documents, iter_file_documents
from fromzero.data.document_formats import iter_column_batches
from prepared_corpus import corpus_error

TEXTS = ["first document\nwith two lines", "", "二つ目の文書 — unicode", "   ", "last one {\"json\": 1}"]


def _jsonl_bytes(texts: list[str]) -> bytes:
    return "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)).encode()


def _write_jsonl(path: Path, texts: list[str]) -> None:
    path.write_bytes(_jsonl_bytes(texts))


def _write_jsonl_gz(path: Path, texts: list[str]) -> None:
    data = _jsonl_bytes(texts)
    path.write_bytes(gzip.compress(data[:40]) + gzip.compress(data[40:]))  # two gzip members


def _write_jsonl_zst(path: Path, texts: list[str]) -> None:
    data = _jsonl_bytes(texts)
    frames = [zstandard.ZstdCompressor(write_checksum=True).compress(part) for part in (data[:40], data[40:])]
    path.write_bytes(b"".join(frames))  # two zstd frames


def _table(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": list(range(len(texts))), "text": texts})


def _write_parquet(path: Path, texts: list[str]) -> None:
    pq.write_table(_table(texts), path, row_group_size=2)


def _write_arrow_file(path: Path, texts: list[str]) -> None:
    table = _table(texts)
    with pa.ipc.new_file(path, table.schema) as writer:
        writer.write_table(table, max_chunksize=2)


def _write_arrow_stream(path: Path, texts: list[str]) -> None:
    table = _table(texts)
    with pa.ipc.new_stream(path, table.schema) as writer:
        writer.write_table(table, max_chunksize=3)


WRITERS: dict[str, tuple[str, Callable[[Path, list[str]], None]]] = {
    "jsonl": ("d.jsonl", _write_jsonl),
    "jsonl.gz": ("d.jsonl.gz", _write_jsonl_gz),
    "jsonl.zst": ("d.JSONL.ZST", _write_jsonl_zst),
    "parquet": ("d.parquet", _write_parquet),
    "arrow-file": ("d.arrow", _write_arrow_file),
    "arrow-stream": ("d.arrow", _write_arrow_stream),
}


@pytest.mark.parametrize("fmt", WRITERS)
def test_every_format_gives_the_written_documents(tmp_path: Path, fmt: str) -> None:
    name, write = WRITERS[fmt]
    path = tmp_path / name
    write(path, TEXTS)
    [file] = input_files([path])
    docs = list(iter_file_documents(file))
    assert [d.text for d in docs] == TEXTS  # empty and blank documents included
    tag = [f"{i}" for i in range(1, 6)] if file.kind == "jsonl" else [f"row {i}" for i in range(1, 6)]
    assert [d.source for d in docs] == [f"{path}:{t}" for t in tag]
    kept = list(iter_documents([path]))
    assert [d.text for d in kept] == [t for t in TEXTS if t.strip()]


@pytest.mark.parametrize("suffix,compress", [
    (".txt", lambda b: b),
    (".txt.gz", gzip.compress),
    (".txt.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_txt_variants_are_one_document(tmp_path: Path, suffix: str, compress: Callable[[bytes], bytes]) -> None:
    text = "第一行\nsecond line\n" * 50
    path = tmp_path / f"book{suffix}"
    path.write_bytes(compress(b"\xef\xbb\xbf" + text.encode()))
    assert list(iter_documents([path])) == [Document(text, str(path))]


def test_input_file_kinds_and_compression(tmp_path: Path) -> None:
    names = ["a.txt", "b.JSONL", "c.jsonl.gz", "d.txt.zst", "e.parquet", "f.arrow"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    files = input_files([tmp_path / n for n in names])
    assert [(f.kind, f.compression) for f in files] == [
        ("txt", None), ("jsonl", None), ("jsonl", "gzip"), ("txt", "zstd"), ("parquet", None), ("arrow", None),
    ]
    assert input_files(["fortune:" + str(tmp_path / "a.txt")]) == [InputFile(tmp_path / "a.txt", "fortune")]


def test_datasets_save_to_disk_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    texts = [f"document {i} " + "x" * i for i in range(10)]
    datasets.Dataset.from_dict({"text": texts, "n": list(range(10))}).save_to_disk(tmp_path / "ds", num_shards=3)
    state = json.loads((tmp_path / "ds" / "state.json").read_text())
    expected = [InputFile(tmp_path / "ds" / e["filename"], "arrow") for e in state["_data_files"]]
    assert len(expected) == 3
    assert input_files([tmp_path / "ds"]) == expected
    docs = list(iter_documents([tmp_path / "ds"]))
    assert [d.text for d in docs] == texts
    assert docs[0].source == f"{expected[0].path}:row 1"
    assert docs[-1].source.startswith(f"{expected[2].path}:row ")


def test_dataset_dict_folder_reads_train(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    train = datasets.Dataset.from_dict({"text": ["train a", "train b"]})
    test = datasets.Dataset.from_dict({"text": ["test a"]})
    datasets.DatasetDict({"test": test, "train": train}).save_to_disk(tmp_path / "dd")
    assert [d.text for d in iter_documents([tmp_path / "dd"])] == ["train a", "train b"]
    datasets.DatasetDict({"test": test, "validation": test}).save_to_disk(tmp_path / "no_train")
    message = corpus_error([tmp_path / "no_train"])
    assert message.startswith(f"{tmp_path / 'no_train'}: DatasetDict has no 'train' split (splits: ")
    assert "test" in message and "validation" in message


def test_folder_mixes_formats_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    _write_parquet(tmp_path / "a" / "p.parquet", ["from parquet"])
    (tmp_path / "a-b.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(b"from zst txt"))
    _write_jsonl_gz(tmp_path / "b.jsonl.gz", ["from gz 1", "from gz 2", "from gz 3"])
    (tmp_path / "ds").mkdir()  # a save_to_disk folder written by hand: state.json order, not name order
    for name, text in [("data-1.arrow", "ds first"), ("data-0.arrow", "ds second")]:
        _write_arrow_stream(tmp_path / "ds" / name, [text])
    state = {"_data_files": [{"filename": "data-1.arrow"}, {"filename": "data-0.arrow"}]}
    (tmp_path / "ds" / "state.json").write_text(json.dumps(state))
    _write_arrow_file(tmp_path / "z.arrow", ["from arrow"])
    (tmp_path / ".hidden").mkdir()
    _write_parquet(tmp_path / ".hidden" / "x.parquet", ["hidden"])
    (tmp_path / "notes.md").write_text("not an input")
    expected = ["from zst txt", "from parquet", "from gz 1", "from gz 2", "from gz 3", "ds first", "ds second",
                "from arrow"]  # "a-b.txt.zst" < "a/p.parquet": sorted as relative POSIX paths, like before
    assert [d.text for d in iter_documents([tmp_path])] == expected


def test_columnar_files_are_read_batch_by_batch(tmp_path: Path) -> None:
    texts = [f"row {i}" for i in range(10)]
    pq.write_table(_table(texts), tmp_path / "d.parquet", row_group_size=4)
    assert pq.ParquetFile(tmp_path / "d.parquet").metadata.num_row_groups == 3
    _write_arrow_stream(tmp_path / "d.arrow", texts)  # record batches of 3 rows
    for name, kind in [("d.parquet", "parquet"), ("d.arrow", "arrow")]:
        batches = list(iter_column_batches(InputFile(tmp_path / name, kind), "text", batch_rows=2))
        assert len(batches) >= 5 and all(len(b) <= 2 for b in batches)
        assert [t for b in batches for t in b] == texts


def test_null_row_names_the_row_across_batches(tmp_path: Path) -> None:
    texts: list[str | None] = [f"row {i}" for i in range(1, 21)]
    texts[16] = None  # row 17
    pq.write_table(_table(texts), tmp_path / "n.parquet", row_group_size=5)
    path = tmp_path / "n.parquet"
    assert corpus_error([path]) == f"{path}:row 17: field 'text' is null; fill or drop rows without text"
    with pa.ipc.new_file(tmp_path / "n.arrow", _table(texts).schema) as writer:
        writer.write_table(_table(texts), max_chunksize=6)
    assert corpus_error([tmp_path / "n.arrow"]).startswith(f"{tmp_path / 'n.arrow'}:row 17: field 'text' is null")


def test_missing_or_non_text_column(tmp_path: Path) -> None:
    pq.write_table(pa.table({"body": ["a"], "n": [1]}), tmp_path / "m.parquet")
    message = corpus_error([tmp_path / "m.parquet"])
    assert message == f"{tmp_path / 'm.parquet'}: no column 'text' (columns: body, n); choose one with --text-field"
    assert [d.text for d in iter_documents([tmp_path / "m.parquet"], text_field="body")] == ["a"]
    _write_arrow_file(tmp_path / "m.arrow", ["a"])
    assert corpus_error([tmp_path / "m.arrow"], text_field="n").startswith(f"{tmp_path / 'm.arrow'}: no column 'n'")
    message = corpus_error([tmp_path / "m.parquet"], text_field="n")
    assert message.startswith(f"{tmp_path / 'm.parquet'}: column 'n' holds int64, not text")
    assert "--text-field" in message


def test_unreadable_columnar_files(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "good.parquet", [f"text {i}" for i in range(100)])
    data = (tmp_path / "good.parquet").read_bytes()
    cases = {
        "garbage.parquet": b"this is not parquet at all",
        "truncated.parquet": data[: len(data) // 2],
        "garbage.arrow": b"not arrow either" * 8,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        what = "Parquet" if name.endswith(".parquet") else "Arrow"
        assert corpus_error([tmp_path / name]).startswith(f"{tmp_path / name}: not a readable {what} file (")
    _write_arrow_stream(tmp_path / "s.arrow", [f"text {i}" for i in range(30)])
    data = (tmp_path / "s.arrow").read_bytes()
    (tmp_path / "s.arrow").write_bytes(data[: len(data) - 60])
    assert corpus_error([tmp_path / "s.arrow"]).startswith(f"{tmp_path / 's.arrow'}: not a readable Arrow file (")


def test_corrupt_compressed_streams(tmp_path: Path) -> None:
    data = _jsonl_bytes([f"line {i} " * 20 for i in range(200)])
    gz, zst = gzip.compress(data), zstandard.ZstdCompressor(write_checksum=True).compress(data)
    bad_crc = bytearray(gz)
    bad_crc[-6] ^= 0xFF  # inside the CRC32 trailer
    cases = {
        "truncated.jsonl.gz": (gz[: len(gz) // 2], "gzip"),
        "crc.jsonl.gz": (bytes(bad_crc), "gzip"),
        "garbage.txt.gz": (b"not gzip" * 10, "gzip"),
        "truncated.jsonl.zst": (zst[: len(zst) // 2], "zstd"),  # zstandard's stream_reader would end silently
        "garbage.txt.zst": (b"not zstd" * 10, "zstd"),
    }
    for name, (content, codec) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert corpus_error([tmp_path / name]).startswith(f"{tmp_path / name}: corrupt {codec} stream (")


def test_bad_utf8_in_compressed_text(tmp_path: Path) -> None:
    first = b'{"text": "ok"}\n'
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(first + b'{"text": "caf\xe9"}\n'))
    message = corpus_error([path])
    assert message.startswith(f"{path}: not valid UTF-8 at byte {len(first) + 13} of the decompressed text (line 2)")
    txt = tmp_path / "x.txt.gz"
    txt.write_bytes(gzip.compress("ab\ncafé".encode("latin-1")))
    assert corpus_error([txt]).startswith(f"{txt}: not valid UTF-8 at byte 6 of the decompressed text (line 2)")


def test_broken_datasets_folders_and_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-0.arrow"}]}))
    state = tmp_path / "ds" / "state.json"
    assert corpus_error([tmp_path / "ds"]).startswith(f"{state}: lists 'data-0.arrow', which is missing")
    (tmp_path / "ds" / "state.json").write_text(json.dumps({"_data_files": [{"filename": "../x.arrow"}]}))
    assert "outside the folder" in corpus_error([tmp_path / "ds"])
    (tmp_path / "ds" / "state.json").write_text("{not json")
    assert corpus_error([tmp_path / "ds"]).startswith(f"{state}: not a readable `datasets`")
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(b"a,b\n"))
    message = corpus_error([tmp_path / "data.csv.gz"])
    assert message.startswith(f"{tmp_path / 'data.csv.gz'}: unsupported file type '.gz'")
    assert ".parquet" in message and ".zst" in message
