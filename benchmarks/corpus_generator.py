"""A seeded synthetic JSONL corpus of any size, with a known number of exact and near duplicates.

Built from the bundled samples (``src/fromzero/data/samples``: two Jane Austen novels and the Tang/Song
poems): every document is a run of paragraphs, each paragraph 1-6 consecutive sentences of a novel taken at
a random place (or, 5% of the time, one whole poem). Document lengths are log-normal, clipped to
[300, 80,000] characters, mean ~16 KB, so 200 MB is ~12k documents. Each line is
``{"id": "doc-00000042", "text": "..."}``.

Known duplicates, so dedup counts can be checked: 2% of the documents are exact copies of an earlier
original and 1% near copies (an earlier original of >= 4,000 characters with one word in 200, at least 3,
replaced by another word: word 5-gram Jaccard similarity >= ~0.95). Originals are at least 3 paragraphs
and are checked unique under a normalisation (lower case, whitespace collapsed), so every exact duplicate
in the file is a planted one. A duplicate's source is regenerated from its seed rather than kept, so
memory stays constant whatever the size (only an 8-byte hash per original is kept).

The file is written streaming to ``NAME.jsonl.tmp`` and renamed; a sidecar ``NAME.json`` with the counts is
written last and marks the cache entry complete, so a rerun with the same size and seed reuses it.

    .venv/bin/python benchmarks/corpus_generator.py 200M [--seed 0] [--work /tmp/fromzero-prepare-bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import time
from pathlib import Path

VERSION = 1  # bump when the output changes, so cached corpora are regenerated
SAMPLES = Path(__file__).resolve().parents[1] / "src" / "fromzero" / "data" / "samples"
NOVELS = ("pride_and_prejudice.txt", "persuasion.txt")
POEMS = "tang_song_poems.jsonl"
EXACT_SHARE, NEAR_SHARE, POEM_SHARE = 0.02, 0.01, 0.05
MIN_CHARS, MAX_CHARS, SIGMA = 300, 80_000, 1.2
MU = math.log(16_000) - SIGMA**2 / 2 + 0.09  # log-normal mean 16 KB; +0.09 makes up for the clipping
MIN_PARAGRAPHS = 3  # so that two random originals are never (near) duplicates of each other
NEAR_MIN_CHARS, NEAR_EVERY, NEAR_MIN_CHANGES = 4_000, 200, 3
_SENTENCE_END = re.compile(r"(?<!Mr\.)(?<!Mrs\.)(?<!Dr\.)(?<!St\.)(?:(?<=[.!?])|(?<=[.!?][\"']))\s+(?=[\"'A-Z])")
_WORD = re.compile(r"[A-Za-z]{4,}")
_UNITS = {"K": 10**3, "M": 10**6, "G": 10**9}


def parse_size(text: str) -> int:
    """``"200M"`` -> 200_000_000 bytes (decimal units K, M, G; a plain number is bytes)."""
    text = text.strip().upper()
    if text[-1:] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(text)


class Pieces:
    """The sentences of the novels, the poems, and a vocabulary for near-duplicate word swaps."""

    def __init__(self) -> None:
        self.sentences: list[str] = []
        for name in NOVELS:
            text = (SAMPLES / name).read_text(encoding="utf-8")
            for para in re.split(r"\n\s*\n", text):
                flat = " ".join(para.split())
                self.sentences += [s for s in _SENTENCE_END.split(flat) if s]
        with (SAMPLES / POEMS).open(encoding="utf-8") as fh:
            self.poems = [json.loads(line)["text"] for line in fh if line.strip()]
        self.words = sorted({w.lower() for s in self.sentences for w in _WORD.findall(s)})

    def paragraph(self, rng: random.Random) -> str:
        if rng.random() < POEM_SHARE:
            return rng.choice(self.poems)
        n = rng.randint(1, 6)
        start = rng.randrange(len(self.sentences) - n)
        return " ".join(self.sentences[start : start + n])

    def original(self, seed: int, index: int, attempt: int) -> str:
        """Original document ``index`` (``attempt`` > 0 after a collision): a pure function of its arguments."""
        rng = random.Random(f"{seed}:{index}:{attempt}")
        target = min(MAX_CHARS, max(MIN_CHARS, rng.lognormvariate(MU, SIGMA)))
        paras: list[str] = []
        size = 0
        while size < target or len(paras) < MIN_PARAGRAPHS:
            paras.append(self.paragraph(rng))
            size += len(paras[-1]) + 2
        return "\n\n".join(paras)

    def near_copy(self, text: str, rng: random.Random) -> str:
        """``text`` with one word in NEAR_EVERY (at least NEAR_MIN_CHANGES) replaced by a different word."""
        spots = [m.span() for m in _WORD.finditer(text)]
        picks = sorted(rng.sample(range(len(spots)), max(NEAR_MIN_CHANGES, len(spots) // NEAR_EVERY)))
        out, last = [], 0
        for i in picks:
            start, end = spots[i]
            word = rng.choice(self.words)
            while word == text[start:end].lower():
                word = rng.choice(self.words)
            out += [text[last:start], word]
            last = end
        return "".join(out) + text[last:]


def _key(text: str) -> bytes:
    return hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=8).digest()


class _Originals:
    """Makes unique originals; remembers only each one's retry count (rare) and which ones are long."""

    def __init__(self, pieces: Pieces, seed: int) -> None:
        self.pieces, self.seed = pieces, seed
        self.count, self.seen, self.retries, self.long = 0, set(), {}, []

    def new(self) -> str:
        attempt = 0
        text = self.pieces.original(self.seed, self.count, attempt)
        while (key := _key(text)) in self.seen:
            attempt += 1
            text = self.pieces.original(self.seed, self.count, attempt)
        self.seen.add(key)
        if attempt:
            self.retries[self.count] = attempt
        if len(text) >= NEAR_MIN_CHARS:
            self.long.append(self.count)
        self.count += 1
        return text

    def again(self, index: int) -> str:
        return self.pieces.original(self.seed, index, self.retries.get(index, 0))


def _write_documents(path: Path, target_bytes: int, seed: int) -> dict[str, int]:
    originals = _Originals(Pieces(), seed)
    rng = random.Random(f"{seed}:stream")
    counts = {"documents": 0, "originals": 0, "exact_duplicates": 0, "near_duplicates": 0, "bytes": 0, "chars": 0}
    with path.open("wb") as fh:
        while counts["bytes"] < target_bytes:
            r = rng.random()
            if originals.count >= 10 and r < EXACT_SHARE:
                text, kind = originals.again(rng.randrange(originals.count)), "exact_duplicates"
            elif originals.long and r < EXACT_SHARE + NEAR_SHARE:
                source = originals.again(rng.choice(originals.long))
                text, kind = originals.pieces.near_copy(source, rng), "near_duplicates"
            else:
                text, kind = originals.new(), "originals"
            line = json.dumps({"id": f"doc-{counts['documents']:08d}", "text": text}, ensure_ascii=False)
            data = (line + "\n").encode()
            fh.write(data)
            counts[kind] += 1
            counts["documents"] += 1
            counts["bytes"] += len(data)
            counts["chars"] += len(text)
    return counts


def corpus_path(work: Path, size: int, seed: int) -> Path:
    """Where the corpus of ``size`` bytes and ``seed`` is cached under ``work``."""
    return Path(work) / f"corpus-v{VERSION}-{size}-seed{seed}.jsonl"


def generate(size: int, seed: int, work: str | Path) -> tuple[Path, dict]:
    """The cached corpus (generated first if missing) and its sidecar: counts, bytes, seconds taken."""
    path = corpus_path(Path(work), size, seed)
    sidecar = path.with_suffix(".json")
    if path.is_file() and sidecar.is_file():
        return path, json.loads(sidecar.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    start = time.perf_counter()
    counts = _write_documents(tmp, size, seed)
    seconds = time.perf_counter() - start
    os.replace(tmp, path)
    info = {"version": VERSION, "seed": seed, "target_bytes": size, **counts, "seconds": round(seconds, 2),
            "mb_per_s": round(counts["bytes"] / 1e6 / seconds, 1)}
    sidecar.write_text(json.dumps(info, indent=2) + "\n")  # last: the cache entry is complete
    return path, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("size", help="e.g. 5M, 200M, 2G (decimal bytes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/fromzero-prepare-bench", help="cache folder")
    args = parser.parse_args()
    path, info = generate(parse_size(args.size), args.seed, args.work)
    print(path)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
