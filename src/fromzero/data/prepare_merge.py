"""``fromzero prepare merge``: the K slice folders of one sliced ``prepare`` -> one prepared folder.

Each slice (``--slices K --slice I``, run anywhere: a SLURM array, a
Kubernetes indexed Job) encodes a contiguous share of the input files with
the same tokenizer and options. The merge checks that the K slices are all
there, complete, intact and compatible, links (or copies, across file
systems) their shards into the new folder in slice order and writes one
manifest over them, last. The merged streams are the concatenation of the
slices' streams, i.e. what one unsliced run gives (the validation split
depends only on each document). Exact and near duplicates are removed
within each slice; copies of a document in files of different slices are
counted in the merged report (``cross_slice_duplicates``), not removed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fromzero.atomic import require_new_folder, write_text
from fromzero.data.prepare_folder import KEYS_FILE, MANIFEST
from fromzero.data.shard_writer import shard_name
from fromzero.data.token_shards import open_manifest
from fromzero.errors import DataError

_SAME = ("kind", "format_version", "dtype", "vocab_size", "tokenizer_kind", "tokenizer_sha256", "sources")


def _slice_manifests(folders: Sequence[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, manifest) of every slice, sorted by slice index, each shard's size and hash verified."""
    slices = []
    for folder in map(Path, folders):
        _, _, manifest = open_manifest(folder, verify="sha256")  # a missing, corrupt or interrupted slice stops here
        slices.append((folder, manifest))
    first_folder, first = slices[0]
    count = first["slices"]["count"]
    for folder, manifest in slices:
        for key in _SAME:
            if manifest.get(key) != first.get(key):
                raise DataError(f"{folder / MANIFEST}: '{key}' differs from {first_folder / MANIFEST}'s; merge "
                                "only the slices of one `prepare --slices` command")
        options = {k: v for k, v in manifest["options"].items() if k != "slice"}
        if options != {k: v for k, v in first["options"].items() if k != "slice"}:
            raise DataError(f"{folder / MANIFEST}: prepared with other options than {first_folder}; merge only "
                            "the slices of one command")
    indices = Counter(m["slices"]["index"] for _, m in slices)
    twice = sorted(i for i, n in indices.items() if n > 1)
    missing = sorted(set(range(count)) - set(indices))
    if twice or missing or any(m["slices"]["count"] != count for _, m in slices):
        problem = f"slice(s) {twice} given twice" if twice else f"slice(s) {missing} missing"
        raise DataError(f"prepare merge: {problem} of --slices {count}; pass each of the {count} slice folders once")
    return sorted(slices, key=lambda item: item[1]["slices"]["index"])


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy instead
        shutil.copyfile(source, target)


def _cross_slice_duplicates(slices: list[tuple[Path, dict[str, Any]]]) -> int:
    """Documents kept by one slice whose exact copy another slice also kept (8 bytes per document in memory)."""
    per_slice = [np.unique(np.fromfile(folder / KEYS_FILE, dtype="<u8")) for folder, _ in slices
                 if (folder / KEYS_FILE).is_file()]
    if not per_slice:
        return 0
    merged = np.concatenate(per_slice)
    return int(merged.size - np.unique(merged).size)


def merge_slices(folders: Sequence[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Merge the slice folders into ``out_dir`` (new); returns the merged manifest."""
    if not folders:
        raise DataError("prepare merge: give the slice folders, e.g. "
                        "`fromzero prepare merge out/slice-* --out out/all`")
    slices = _slice_manifests(folders)
    out = Path(out_dir)
    require_new_folder(out, "choose a new output folder for the merge")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(slices[0][0] / "tokenizer.json", out / "tokenizer.json")
    shards: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    report: dict[str, Any] = {"documents_read": 0, "documents_kept": 0, "dropped": Counter()}
    for folder, manifest in slices:
        for split, entries in manifest["shards"].items():
            for entry in entries:
                name = shard_name(split, len(shards[split]))
                _link(folder / entry["file"], out / name)
                shards[split].append({**entry, "file": name})
        for key in ("documents_read", "documents_kept"):
            report[key] += manifest["report"][key]
        report["dropped"].update(manifest["report"]["dropped"])
    first = slices[0][1]
    totals = {s: sum(e["tokens"] for e in shards[s]) for s in shards}
    report.update({"dropped": dict(sorted(report["dropped"].items())), "train_tokens": totals["train"],
                   "val_tokens": totals["val"], "shards": {s: len(v) for s, v in shards.items()},
                   "tokens_per_shard": {s: [e["tokens"] for e in v] for s, v in shards.items()},
                   "cross_slice_duplicates": _cross_slice_duplicates(slices)})
    options = {k: v for k, v in first["options"].items() if k != "slice"}
    manifest = {**{k: first[k] for k in _SAME}, "train_tokens": totals["train"], "val_tokens": totals["val"],
                "documents": report["documents_kept"], "shards": shards, "options": options, "report": report,
                "slices": {"count": first["slices"]["count"], "merged": [str(f) for f, _ in slices]}}
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
