"""Streaming ``prepare``: documents -> cleaned -> encoded in worker processes -> token shards + manifest.

Memory is bounded by one training shard, the encoding batches in flight and
the tokenizer sample, never by the corpus: documents are read one at a
time, kept or dropped (:mod:`~fromzero.data.prepare_cleaning`), encoded in
order (:mod:`~fromzero.data.encode_pool`) and routed to the training and
validation shards (:mod:`~fromzero.data.split_router`). ``manifest.json``
is written last: a folder without it is incomplete, and running the same
command again continues from the last complete shard (documents before it
are read and hashed again, not encoded). The output bytes depend only on
the inputs and the options, not on the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers as hf_tokenizers

from fromzero.atomic import require_new_folder, write_text, write_with
from fromzero.data.corpus import Document, input_files, iter_file_documents
from fromzero.data.document_formats import InputFile
from fromzero.data.encode_pool import DocumentPool
from fromzero.data.prepare_cleaning import Deduper, PrepareReport, near_options, sample_candidates
from fromzero.data.prepare_folder import KEYS_FILE, MANIFEST, STATE, open_output_folder, small_corpus_split
from fromzero.data.prepare_options import PrepareOptions
from fromzero.data.shard_writer import ShardWriter
from fromzero.data.split_router import SPLITS, SplitRouter
from fromzero.data.token_shards import FORMAT_VERSION, KIND
from fromzero.data.tokenizer_sample import sample_texts
from fromzero.data.tokenizers import Tokenizer, TokenizerConfig, dtype_for_vocab, train_tokenizer
from fromzero.errors import ConfigError, DataError
from fromzero.progress import progress as progress_bar
from fromzero.progress import reporting

_BATCH_DOCS = 256
_BATCH_BYTES = 1 << 20  # characters per batch: amortises a worker round trip, while the tokenizer's output
#                         for a batch (ids, offsets, token strings) stays small in memory
_CHILD_TRAINING_BYTES = 64 << 20  # inputs from this size on train their tokenizer in a child process


def slice_files(files: list[InputFile], options: PrepareOptions) -> list[InputFile]:
    """Slice ``options.slice``'s contiguous share of ``files``; slices in order cover them in order."""
    if options.slices > len(files):
        raise ConfigError(f"prepare --slices {options.slices}: the inputs hold only {len(files)} file(s); "
                          f"use at most {len(files)} slices")
    n, k, i = len(files), options.slices, options.slice
    return files[i * n // k : (i + 1) * n // k]


def _documents(files: Sequence[InputFile], text_field: str):
    for file in files:
        yield from iter_file_documents(file, text_field)


def _fingerprint(inputs: Sequence[str | Path], files: Sequence[InputFile], options: PrepareOptions,
                 tokenizer_source: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": [str(s) for s in inputs],
            "files": [[str(f.path), f.path.stat().st_size] for f in files],
            "options": options.fingerprint(), "tokenizer": tokenizer_source}


def _tokenizer(files: Sequence[InputFile], options: PrepareOptions, cfg: TokenizerConfig | None,
               given: Tokenizer | None, progress: bool) -> Tokenizer:
    """The given tokenizer, or one trained on a bounded sample of the cleaned documents.

    A large corpus trains in a child process: the sample and the trainer's buffers (several times the
    sample) go back to the system when it exits instead of staying in this process's heap."""
    if given is not None:
        return given
    if options.slices > 1:
        raise ConfigError("prepare --slices: every slice must encode with the same tokenizer; train one first "
                          "(`fromzero prepare INPUTS --out DIR --tokenizer-only`) and pass --tokenizer-file "
                          "DIR/tokenizer.json")
    args = (list(files), options, cfg or TokenizerConfig(), progress and reporting())
    if sum(f.path.stat().st_size for f in files) < _CHILD_TRAINING_BYTES:
        return Tokenizer.from_hf(hf_tokenizers.Tokenizer.from_str(_sample_and_train(*args)))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return Tokenizer.from_hf(hf_tokenizers.Tokenizer.from_str(pool.apply(_sample_and_train, args)))


def _sample_and_train(files: list[InputFile], options: PrepareOptions, cfg: TokenizerConfig, progress: bool) -> str:
    """tokenizer.json text of a tokenizer trained on the seeded sample (run here or in a child process)."""
    # leave=False: no closing line, so an error in the inputs is the only line on stderr
    docs = progress_bar(_documents(files, options.text_field), desc="sampling for the tokenizer", unit="doc",
                        leave=False, enabled=progress)
    sample = sample_texts(sample_candidates(iter(docs), options), options.tokenizer_sample_bytes, options.seed)
    if not sample:
        names = ", ".join(str(f.path) for f in files)
        raise DataError(f"no text found in {names}: every document is empty or was dropped; add text or "
                        "relax the filters")
    return train_tokenizer(sample, cfg).hf.to_str()


def write_sample_tokenizer(inputs: Sequence[str | Path], out_dir: str | Path, options: PrepareOptions,
                           cfg: TokenizerConfig, progress: bool = True) -> Path:
    """Train a tokenizer on the seeded sample of every input (slices ignored) and write ``out_dir/tokenizer.json``:
    the one tokenizer the slices of a ``--slices`` run share."""
    require_new_folder(out_dir, "choose a new output folder or delete this one")
    tokenizer = _tokenizer(input_files(list(inputs)), replace(options, slices=1, slice=0), cfg, None, progress)
    return tokenizer.save(Path(out_dir) / "tokenizer.json")


def _batches(documents: Iterator[Document], start: int) -> Iterator[tuple[list[int], list[str], bool]]:
    """``(indices, texts, encode)``: documents in batches bounded by count and characters; documents
    before ``start`` (a resumed run: already in complete shards) are analysed for dedup but not encoded."""
    indices: list[int] = []
    texts: list[str] = []
    chars = 0
    for index, doc in enumerate(documents):
        indices.append(index)
        texts.append(doc.text)
        chars += len(doc.text)
        if len(texts) == _BATCH_DOCS or chars >= _BATCH_BYTES:
            yield indices, texts, indices[-1] >= start
            indices, texts, chars = [], [], 0
    if texts:
        yield indices, texts, indices[-1] >= start


def _encode_all(files, options, tokenizer, writers, resume, report, progress) -> None:
    """Read, analyse, keep or drop, encode and route every document; ``resume`` holds the resume point."""
    next_doc, skip = resume["next_doc"], resume["skip"]
    router = SplitRouter(writers, options.chunk_tokens, options.val_fraction, options.seed, tokenizer.eos_id,
                         resume["save"])
    dedup = Deduper(options)
    docs = progress_bar(_documents(files, options.text_field), desc="encoding", unit="doc", leave=False,
                        enabled=progress)
    pool = DocumentPool(tokenizer.hf.to_str(), writers["train"].dtype, options.quality, near_options(options),
                        options.workers)
    with pool:
        for indices, result in pool.map(_batches(iter(docs), next_doc)):
            ends = np.cumsum(result.lengths)
            for j, index in enumerate(indices):
                report.documents_read += 1
                why = result.reasons[j] or dedup.reason(result.keys[j], result.bands[j])
                if why:
                    report.dropped[why] += 1
                    continue
                report.keep(result.keys[j])
                if index >= next_doc:
                    ids = result.ids[ends[j] - result.lengths[j] : ends[j]]
                    router.add(index, ids, result.keys[j], skip if index == next_doc else None)


def prepare_stream(inputs: Sequence[str | Path], out_dir: str | Path, options: PrepareOptions | None = None, *,
                   tokenizer_cfg: TokenizerConfig | None = None, tokenizer: Tokenizer | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Prepare ``inputs`` into ``out_dir`` (new, or an interrupted run of the same command); returns the manifest.

    The tokenizer is ``tokenizer`` when given, else trained with ``tokenizer_cfg`` on a
    ``options.tokenizer_sample_bytes`` sample of the cleaned documents.
    """
    options = options or PrepareOptions()
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files = slice_files(input_files(inputs), options)
    source = ({"sha256": hashlib.sha256(tokenizer.hf.to_str().encode()).hexdigest()} if tokenizer is not None
              else asdict(tokenizer_cfg or TokenizerConfig()))
    out = Path(out_dir)
    fingerprint = _fingerprint(inputs, files, options, source)
    state = open_output_folder(out, fingerprint)
    if state and state.get("complete"):
        return json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    existed = out.exists()
    try:
        return _prepare_into(out, inputs, files, options, fingerprint, state,
                             lambda: _tokenizer(files, options, tokenizer_cfg, tokenizer, progress), progress)
    except Exception:
        if state is None:  # a fresh run that failed (bad input, full disk): leave nothing behind
            _discard(out, existed)
        raise  # Ctrl-C and kills are not caught: an interrupted run keeps its state and resumes


def _discard(out: Path, existed: bool) -> None:
    if not out.is_dir():
        return
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for path in out.iterdir():  # the folder was there (empty) before: empty it again
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _prepare_into(out: Path, inputs: list, files: list[InputFile], options: PrepareOptions,
                  fingerprint: dict[str, Any], state: dict[str, Any] | None, make_tokenizer, progress: bool,
                  ) -> dict[str, Any]:
    if state and (out / "tokenizer.json").is_file():
        tokenizer = Tokenizer.load(out / "tokenizer.json")
    else:  # new, or killed before its tokenizer was saved: nothing to keep
        state = None
        tokenizer = make_tokenizer()
    tokenizer_text = tokenizer.hf.to_str(pretty=True)
    tokenizer_sha = hashlib.sha256(tokenizer_text.encode("utf-8")).hexdigest()
    if state and state["tokenizer_sha256"] != tokenizer_sha:
        raise DataError(f"{out / 'tokenizer.json'}: changed since the interrupted run; delete {out} and start again")
    dtype = dtype_for_vocab(tokenizer.vocab_size)
    entries = (state or {}).get("shards", {})
    writers = {s: ShardWriter(out, s, dtype, options.shard_tokens if s == "train" else None, entries.get(s))
               for s in SPLITS}

    def save(next_doc: int, skip: dict[str, int] | None) -> None:
        record = {"fingerprint": fingerprint, "tokenizer_sha256": tokenizer_sha, "dtype": dtype.name,
                  "next_doc": next_doc, "skip": skip, "shards": {s: w.entries for s, w in writers.items()}}
        write_text(out / STATE, json.dumps(record) + "\n")

    if state is None:  # the resume state first, so a run killed from here on can always be resumed
        save(0, None)
        write_text(out / "tokenizer.json", tokenizer_text)
    report = PrepareReport(keys=[] if options.slices > 1 else None)
    resume = {"next_doc": (state or {}).get("next_doc", 0), "skip": (state or {}).get("skip"), "save": save}
    _encode_all(files, options, tokenizer, writers, resume, report, progress)
    if options.val_fraction and not writers["train"].entries and not writers["val"].entries:
        small_corpus_split(writers, options, tokenizer.eos_id, inputs)
    for split in SPLITS:
        writers[split].flush()
    return _publish(out, inputs, options, tokenizer, tokenizer_sha, writers, report)


def _publish(out: Path, inputs, options: PrepareOptions, tokenizer: Tokenizer, tokenizer_sha: str,
             writers: dict[str, ShardWriter], report: PrepareReport) -> dict[str, Any]:
    """Write report.json, then manifest.json (the completion mark), then drop the resume state."""
    shards = {s: w.entries for s, w in writers.items()}
    report.train_tokens, report.val_tokens = writers["train"].written_tokens, writers["val"].written_tokens
    report.tokens_per_shard = {s: [int(e["tokens"]) for e in entries] for s, entries in shards.items()}
    if report.train_tokens == 0:
        raise DataError(f"no training tokens produced from {', '.join(map(str, inputs))}; add text")
    manifest = {
        "kind": KIND, "format_version": FORMAT_VERSION, "dtype": writers["train"].dtype.name,
        "vocab_size": tokenizer.vocab_size, "tokenizer_kind": tokenizer.kind, "tokenizer_sha256": tokenizer_sha,
        "train_tokens": report.train_tokens, "val_tokens": report.val_tokens, "documents": report.documents_kept,
        "shards": shards, "sources": [str(s) for s in inputs], "options": options.fingerprint(),
        "report": report.as_dict(), "slices": {"count": options.slices, "index": options.slice},
    }
    if report.keys is not None:
        keys = np.array(sorted(report.keys), dtype="<u8")
        write_with(out / KEYS_FILE, keys.tofile)
    write_text(out / "report.json", json.dumps(report.as_dict(), indent=2) + "\n")
    write_text(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    (out / STATE).unlink(missing_ok=True)
    return manifest
