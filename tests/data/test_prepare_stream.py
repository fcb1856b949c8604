"""Streaming ``prepare``: workers don't change a byte, a killed run resumes exactly, slices merge into the
unsliced output, duplicates are counted, and the validation split is disjoint and fixed by the documents."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fromzero.data.dedup import document_key
from fromzero.data.hashing import unit_uniform
from fromzero.data.prepare_merge import merge_slices
from fromzero.data.prepare_options import PrepareOptions
from fromzero.data.prepare_stream import prepare_stream, write_sample_tokenizer
from fromzero.data.shard_writer import ShardWriter
from fromzero.data.split_router import validation_chunks
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig
from fromzero.errors import ConfigError, DataError
from prepared_corpus import folder_bytes, make_documents, read_split, split_files, write_jsonl

CHAR = TokenizerConfig(kind="char")


def _options(**kw) -> PrepareOptions:
    return PrepareOptions(**{"shard_tokens": 2_000, "chunk_tokens": 300, "val_fraction": 0.1, **kw})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[str]]:
    base = make_documents(300, seed=1)
    # an exact copy, a copy up to case and an empty document, all in the first of the three files
    texts = base[:50] + [base[5], base[17].upper(), "   "] + base[50:]
    folder = tmp_path_factory.mktemp("corpus")
    split_files(folder, texts, 3)
    return folder, base


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    prepare_stream([corpus[0]], out, _options(workers=1), tokenizer_cfg=CHAR, progress=False)
    return out


def test_workers_change_no_byte(corpus, reference, tmp_path) -> None:
    prepare_stream([corpus[0]], tmp_path / "w3", _options(workers=3), tokenizer_cfg=CHAR, progress=False)
    assert folder_bytes(tmp_path / "w3") == folder_bytes(reference)
    manifest = json.loads((reference / "manifest.json").read_text())
    assert len(manifest["shards"]["train"]) >= 3  # tiny shards: the test crosses several
    assert all(e["tokens"] == 2_000 for e in manifest["shards"]["train"][:-1])


def test_duplicates_and_empty_documents_are_dropped_and_counted(reference, corpus) -> None:
    report = json.loads((reference / "report.json").read_text())
    assert report["documents_read"] == len(corpus[1]) + 3 == 303
    assert report["dropped"] == {"empty": 1, "exact_duplicate": 2}
    assert report["documents_kept"] == 300


def test_split_is_disjoint_complete_and_follows_the_documents(reference, corpus) -> None:
    tok = Tokenizer.load(reference / "tokenizer.json")
    train, val = read_split(reference, "train"), read_split(reference, "val")
    # Reference split computed here from each document alone (chunk rule of the module docstring).
    want = {"train": [], "val": []}
    for text in corpus[1]:
        seq = [*tok.encode(text), tok.eos_id]
        u = unit_uniform(1337, document_key(text))
        for k in range(math.ceil(len(seq) / 300)):
            held = math.floor((k + 1) * 0.1 + u) > math.floor(k * 0.1 + u)
            want["val" if held else "train"].extend(seq[k * 300 : (k + 1) * 300])
    assert train.tolist() == want["train"] and val.tolist() == want["val"]
    assert 0.05 < len(val) / (len(val) + len(train)) < 0.15


def test_validation_chunks_spread_the_fraction_evenly() -> None:
    for u in (0.0, 0.37, 0.99):
        mask = validation_chunks(100, 0.1, u)
        assert mask.sum() == 10 and np.diff(np.flatnonzero(mask)).tolist() == [10] * 9
    assert validation_chunks(1, 0.1, 0.95).tolist() == [True]
    assert validation_chunks(1, 0.1, 0.85).tolist() == [False]


@pytest.mark.parametrize("kill_at", [1, 2, 5])
def test_interrupted_run_resumes_to_the_same_bytes(corpus, reference, tmp_path, monkeypatch, kill_at) -> None:
    real, calls = ShardWriter.flush, {"n": 0}

    def dying_flush(self):
        calls["n"] += 1
        if calls["n"] == kill_at * 2:  # after a shard is on disk, before the resume state records it
            raise KeyboardInterrupt
        return real(self)

    out = tmp_path / "out"
    monkeypatch.setattr(ShardWriter, "flush", dying_flush)
    with pytest.raises(KeyboardInterrupt):
        prepare_stream([corpus[0]], out, _options(workers=2), tokenizer_cfg=CHAR, progress=False)
    monkeypatch.setattr(ShardWriter, "flush", real)
    assert not (out / "manifest.json").exists() and (out / ".prepare-state.json").exists()
    with pytest.raises(DataError, match="incomplete"):
        from fromzero.data.shards import load_shards
        load_shards(out)
    prepare_stream([corpus[0]], out, _options(workers=1), tokenizer_cfg=CHAR, progress=False)
    assert folder_bytes(out) == folder_bytes(reference)


def test_rerun_of_a_complete_folder_is_a_no_op_and_other_options_are_refused(corpus, reference, tmp_path) -> None:
    before = folder_bytes(reference)
    prepare_stream([corpus[0]], reference, _options(workers=1), tokenizer_cfg=CHAR, progress=False)
    assert folder_bytes(reference) == before
    with pytest.raises(ConfigError, match="other inputs or options"):
        prepare_stream([corpus[0]], reference, _options(seed=2), tokenizer_cfg=CHAR, progress=False)
    assert folder_bytes(reference) == before


def test_two_slices_merged_equal_one_slice(corpus, tmp_path) -> None:
    tok_dir = tmp_path / "tok"
    write_sample_tokenizer([corpus[0]], tok_dir, _options(), CHAR, progress=False)
    tok = Tokenizer.load(tok_dir)
    whole = tmp_path / "whole"
    prepare_stream([corpus[0]], whole, _options(), tokenizer=tok, progress=False)
    for i in range(2):
        prepare_stream([corpus[0]], tmp_path / f"s{i}", _options(slices=2, slice=i), tokenizer=tok, progress=False)
    manifest = merge_slices([tmp_path / "s1", tmp_path / "s0"], tmp_path / "merged")
    for split in ("train", "val"):
        assert read_split(tmp_path / "merged", split).tolist() == read_split(whole, split).tolist()
    assert manifest["report"]["documents_kept"] == 300 and manifest["report"]["cross_slice_duplicates"] == 0


def test_copies_in_different_slices_are_counted_at_the_merge(tmp_path) -> None:
    texts = make_documents(20, seed=3)
    write_jsonl(tmp_path / "in" / "a.jsonl", texts[:10])
    write_jsonl(tmp_path / "in" / "b.jsonl", texts[10:] + [texts[2]])
    tok = Tokenizer.load(write_sample_tokenizer([tmp_path / "in"], tmp_path / "tok", _options(), CHAR, progress=False))
    for i in range(2):
        prepare_stream([tmp_path / "in"], tmp_path / f"s{i}", _options(slices=2, slice=i), tokenizer=tok,
                       progress=False)
    report = merge_slices([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")["report"]
    assert report["cross_slice_duplicates"] == 1 and report["documents_kept"] == 21


def test_slice_and_merge_bad_inputs(corpus, tmp_path) -> None:
    with pytest.raises(ConfigError, match="--slice: must be in \\[0, 1\\]"):
        PrepareOptions(slices=2, slice=2)
    with pytest.raises(ConfigError, match="only 3 file"):
        prepare_stream([corpus[0]], tmp_path / "x", _options(slices=4, slice=0), tokenizer_cfg=CHAR, progress=False)
    with pytest.raises(ConfigError, match="--tokenizer-file"):
        prepare_stream([corpus[0]], tmp_path / "x", _options(slices=2), tokenizer_cfg=CHAR, progress=False)
    tok = Tokenizer.load(write_sample_tokenizer([corpus[0]], tmp_path / "tok", _options(), CHAR, progress=False))
    prepare_stream([corpus[0]], tmp_path / "s0", _options(slices=2), tokenizer=tok, progress=False)
    with pytest.raises(DataError, match=r"slice\(s\) \[1\] missing"):
        merge_slices([tmp_path / "s0"], tmp_path / "m")
    with pytest.raises(DataError, match="given twice"):
        merge_slices([tmp_path / "s0", tmp_path / "s0"], tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_tokenizer_trains_on_a_bounded_sample(corpus, tmp_path) -> None:
    opts = _options(tokenizer_sample_bytes=500)  # a few documents: most characters never seen
    prepare_stream([corpus[0]], tmp_path / "small", opts, tokenizer_cfg=CHAR, progress=False)
    full = Tokenizer.load(write_sample_tokenizer([corpus[0]], tmp_path / "tok", _options(), CHAR, progress=False))
    assert Tokenizer.load(tmp_path / "small").vocab_size < full.vocab_size


def test_one_short_document_still_gets_a_validation_split(tmp_path) -> None:
    path = write_jsonl(tmp_path / "one.jsonl", ["a short text of a few words only"])
    prepare_stream([path], tmp_path / "out", PrepareOptions(), tokenizer_cfg=CHAR, progress=False)
    train, val = read_split(tmp_path / "out", "train"), read_split(tmp_path / "out", "val")
    assert len(val) >= 1 and len(train) >= 1 and len(train) + len(val) == len("a short text of a few words only") + 1


def test_sigkill_then_the_same_command_gives_the_uninterrupted_output(tmp_path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", make_documents(3000, seed=4, max_words=60))
    argv = [sys.executable, "-m", "fromzero", "prepare", str(path), "--tokenizer", "char", "--shard-tokens", "3000",
            "--workers", "2", "--no-progress", "--out"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "OMP_NUM_THREADS": "1"}
    subprocess.run([*argv, str(tmp_path / "whole")], env=env, check=True, capture_output=True, timeout=300)
    out = tmp_path / "killed"
    proc = subprocess.Popen([*argv, str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / ".prepare-state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            if len(json.loads(state.read_text())["shards"]["train"]) >= 5:
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (out / "manifest.json").exists(), "finished before the kill"
    subprocess.run([*argv, str(out)], env=env, check=True, capture_output=True, timeout=300)
    assert folder_bytes(out) == folder_bytes(tmp_path / "whole")


def test_the_sliced_script_gives_the_unsliced_streams(corpus, tmp_path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "FROMZERO": f"{sys.executable} -m fromzero"}
    subprocess.run(["bash", str(root / "scripts/prepare_sliced.sh"), "3", str(tmp_path / "out"), str(corpus[0]),
                    "--", "--tokenizer", "char", "--shard-tokens", "2000", "--chunk-tokens", "300"],
                   env=env, check=True, capture_output=True, timeout=300)
    tok = Tokenizer.load(tmp_path / "out/tokenizer")
    prepare_stream([corpus[0]], tmp_path / "whole", _options(), tokenizer=tok, progress=False)
    for split in ("train", "val"):
        assert read_split(tmp_path / "out/merged", split).tolist() == read_split(tmp_path / "whole", split).tolist()


def test_near_duplicates_are_dropped_with_the_flag_whatever_the_workers(tmp_path) -> None:
    texts = make_documents(40, seed=5, min_words=300, max_words=400)
    words = texts[7].split()
    words[100], words[200], words[300] = "zebra", "quartz", "violin"  # 3 words of ~350 changed: Jaccard ~0.96
    path = write_jsonl(tmp_path / "in.jsonl", [*texts, " ".join(words)])
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        manifest = prepare_stream([path], out, _options(near_dedup=True, workers=workers), tokenizer_cfg=CHAR,
                                  progress=False)
        assert manifest["report"]["dropped"] == {"near_duplicate": 1}
        outs.append(folder_bytes(out))
    assert outs[0] == outs[1]
    plain = prepare_stream([path], tmp_path / "plain", _options(), tokenizer_cfg=CHAR, progress=False)
    assert plain["report"]["dropped"] == {} and plain["documents"] == 41


def test_a_large_corpus_trains_its_tokenizer_in_a_child_process_to_the_same_file(corpus, reference, tmp_path,
                                                                                   monkeypatch) -> None:
    import fromzero.data.prepare_stream as stream

    monkeypatch.setattr(stream, "_CHILD_TRAINING_BYTES", 0)  # every corpus counts as large
    prepare_stream([corpus[0]], tmp_path / "child", _options(workers=2), tokenizer_cfg=CHAR, progress=False)
    assert folder_bytes(tmp_path / "child") == folder_bytes(reference)
    (tmp_path / "blank.jsonl").write_text('{"text": "  "}\n')
    with pytest.raises(DataError, match="blank.jsonl: every document is empty"):  # raised in the child, shown here
        prepare_stream([tmp_path / "blank.jsonl"], tmp_path / "x", _options(), tokenizer_cfg=CHAR, progress=False)


def test_shards_written_in_many_small_writes_are_the_same_bytes(corpus, reference, tmp_path, monkeypatch) -> None:
    import fromzero.data.shard_writer as writer

    monkeypatch.setattr(writer, "WRITE_BYTES", 64)  # a write to the temp file every ~32 tokens
    prepare_stream([corpus[0]], tmp_path / "small", _options(workers=1), tokenizer_cfg=CHAR, progress=False)
    assert folder_bytes(tmp_path / "small") == folder_bytes(reference)
