"""Exact and near-duplicate detection for a stream of documents.

Exact: two documents are duplicates when their texts are equal after
:func:`normalise_text` (Unicode NFKC, lowercase, every whitespace run
collapsed to one space, stripped). :func:`document_key` is a stable 64-bit
hash of that normalised text; :class:`ExactDedup` remembers the keys it has
seen. A key collision between different texts has probability about
n^2 / 2^65 (under 3e-8 for a billion documents).

Near: MinHash (Broder, "On the resemblance and containment of documents",
1997) estimates the Jaccard similarity of two documents' shingle sets, and
locality-sensitive hashing over bands of the signature (Leskovec, Rajaraman
& Ullman, "Mining of Massive Datasets", ch. 3) finds the likely similar pairs
without comparing every pair. :class:`NearDedup` uses ``datasketch``'s
``MinHash`` and ``MinHashLSH`` as Lee et al. ("Deduplicating Training Data
Makes Language Models Better", 2022) and datatrove do. Both classes keep
their state in memory and are fed documents in stream order by one process,
so the result does not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
import unicodedata
import zlib


def normalise_text(text: str) -> str:
    """``text`` in the form exact dedup compares: NFKC, lowercase, whitespace runs -> one space, stripped.

    NFKC folds compatibility forms (full-width ``ＡＢＣ`` -> ``ABC``, ligatures,
    non-breaking spaces) so that texts differing only in those count as equal.
    """
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):  # quick checks first: the
        text = unicodedata.normalize("NFKC", text)  # full pass costs ~5% of encoding the text
    return " ".join(text.lower().split())  # str.split() and re's \s agree on what whitespace is


def document_key(text: str) -> int:
    """A 64-bit unsigned key of the normalised text: blake2b (8-byte digest), little-endian.

    Stable across processes, machines and Python runs (unlike ``hash()``),
    so it can decide the validation split as well as dedup.
    """
    digest = hashlib.blake2b(normalise_text(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class ExactDedup:
    """Remembers document keys; :meth:`seen` says whether a key came before.

    Memory: a Python ``set`` of ints. Measured with tracemalloc for 1M random
    64-bit keys (the int objects included): about 70 bytes per document
    (36-byte int objects + a hash table of 16-byte slots kept at most 60%
    full), with a transient 1.5x while the table grows. 100M documents thus
    need about 7 GB: beyond that, shard the key space (dedup each
    ``key % K`` bucket in its own pass) or use an external sort.
    """

    def __init__(self) -> None:
        self._keys: set[int] = set()
        self.count = 0  # duplicates found

    def seen(self, key: int) -> bool:
        """True when ``key`` was seen before (and counts it); otherwise records it and returns False."""
        if key in self._keys:
            self.count += 1
            return True
        self._keys.add(key)
        return False

    def __len__(self) -> int:
        """Number of distinct keys recorded."""
        return len(self._keys)


def shingles(text: str, size: int = 5) -> list[bytes]:
    """The shingles of ``normalise_text(text)``: word ``size``-grams, as UTF-8 bytes joined by one space.

    A text with fewer than ``size`` words gives character ``size``-grams
    instead (and a text shorter than ``size`` characters gives itself), so
    short documents still have a non-trivial signature.
    """
    norm = normalise_text(text)
    words = norm.split(" ")
    if len(words) >= size:
        return [" ".join(words[i:i + size]).encode("utf-8") for i in range(len(words) - size + 1)]
    if len(norm) <= size:
        return [norm.encode("utf-8")]
    return [norm[i:i + size].encode("utf-8") for i in range(len(norm) - size + 1)]


class NearDedup:
    """MinHash LSH near-duplicate filter: the first document of a similar group is kept, later ones flagged.

    The signature is datasketch's ``MinHash`` (``num_perm`` permutations from
    ``seed``) of the shingle set; shingles are hashed with CRC-32 (C-speed and
    stable across runs, unlike Python's salted ``hash()``; datasketch mixes it
    with the MurmurHash3 finalizer before permuting). The signature is cut into
    b bands of r rows, with (b, r) the ones datasketch's ``MinHashLSH`` picks
    for ``threshold``: a document is a near duplicate when one of its bands
    equals the same band of a kept document, so a pair of Jaccard similarity s
    is flagged with probability 1 - (1 - s^r)^b (about 0.5 near ``threshold``,
    near 1 above it, near 0 well below it). Candidates are not re-verified, as
    in datatrove. Decisions equal ``MinHashLSH.query``/``insert`` on the same
    signatures; the index is one set of 64-bit band keys instead, because
    datasketch's per-band dicts of sets cost 3.2 KB per document (measured,
    tracemalloc, num_perm=128) against about 0.75 KB here.
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, shingle: int = 5, seed: int = 1) -> None:
        from datasketch import MinHash, MinHashLSH  # here: it loads scipy, which plain dedup does not need

        self._minhash_class = MinHash
        self.threshold, self.num_perm, self.shingle, self.seed = threshold, num_perm, shingle, seed
        # One template holds the permutations; drawing them per document would dominate the cost.
        self._template = MinHash(num_perm=num_perm, seed=seed, hashfunc=zlib.crc32)
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)  # only for its choice of (b, r)
        self.bands, self.rows = lsh.b, lsh.r
        self._band_keys: set[int] = set()
        self.count = 0  # near duplicates found
        self.kept = 0  # documents indexed

    def minhash(self, text: str):
        """The MinHash signature (a ``datasketch.MinHash``) of ``text``'s shingle set (see :func:`shingles`)."""
        m = self._minhash_class(num_perm=self.num_perm, seed=self.seed, hashfunc=zlib.crc32,
                    permutations=self._template.permutations, scheme=self._template.scheme)
        m.update_batch(shingles(text, self.shingle))
        return m

    def band_keys(self, m) -> list[int]:
        """One 64-bit key per band: blake2b of (band index, the band's r signature values)."""
        values = m.hashvalues  # (num_perm,)
        return [int.from_bytes(hashlib.blake2b(i.to_bytes(4, "little") + values[i * self.rows:(i + 1) * self.rows]
                                               .tobytes(), digest_size=8).digest(), "little")
                for i in range(self.bands)]

    def is_near_duplicate(self, text: str) -> bool:
        """True (and counted) when ``text`` shares a band with a kept document; otherwise it is indexed and kept."""
        return self.seen_bands(self.band_keys(self.minhash(text)))

    def seen_bands(self, keys: list[int]) -> bool:
        """:meth:`is_near_duplicate` from a document's band keys (computed elsewhere, e.g. in a worker)."""
        if any(k in self._band_keys for k in keys):
            self.count += 1
            return True
        self._band_keys.update(keys)
        self.kept += 1
        return False
