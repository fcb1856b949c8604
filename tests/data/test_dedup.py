"""Dedup: normalisation, stable keys, exact duplicates counted, MinHash near-duplicates against references."""

from __future__ import annotations

import hashlib
import random

from datasketch import MinHashLSH

from fromzero.data.dedup import ExactDedup, NearDedup, document_key, normalise_text, shingles


def _words(rng: random.Random, n: int, vocab_size: int = 3000) -> list[str]:
    return [f"w{rng.randrange(vocab_size)}" for _ in range(n)]


def _exact_jaccard(a: str, b: str, size: int = 5) -> float:
    """Naive Jaccard of word ``size``-gram sets (texts here are lowercase, single-spaced)."""
    def grams(t: str) -> set[tuple[str, ...]]:
        w = t.split(" ")
        return {tuple(w[i:i + size]) for i in range(len(w) - size + 1)}
    sa, sb = grams(a), grams(b)
    return len(sa & sb) / len(sa | sb)


def _edit(words: list[str], positions: list[int], rng: random.Random) -> str:
    out = list(words)
    for p in positions:
        out[p] = f"changed{rng.randrange(10**6)}"
    return " ".join(out)


def test_normalise_text_folds_case_whitespace_and_compatibility_forms() -> None:
    assert normalise_text("  Hello\t\n WORLD  ") == "hello world"
    assert normalise_text("ＡＢＣ　１２３") == "abc 123"  # full-width letters, digits and space
    assert normalise_text("ﬁne\u00a0day") == "fine day"  # ligature, non-breaking space
    assert normalise_text("Cafe\u0301") == normalise_text("Café")  # combining accent composed
    assert normalise_text("a b") != normalise_text("ab")


def test_document_key_is_blake2b_of_normalised_text_and_stable() -> None:
    expected = int.from_bytes(hashlib.blake2b(b"hello world", digest_size=8).digest(), "little")
    assert expected == 5814608031911216775  # fixed across runs, processes and machines
    assert document_key("  Hello \n World") == expected
    cafe = int.from_bytes(hashlib.blake2b("café abc".encode(), digest_size=8).digest(), "little")
    assert document_key("CAFE\u0301   ＡＢＣ") == cafe == 12774507383330491130
    assert 0 <= document_key("x") < 2**64


def test_exact_dedup_counts_duplicates() -> None:
    texts = ["The cat sat.", "the  cat SAT.", "A dog.", "ａ ｄｏｇ.", "Another one.", "The cat sat.", ""]
    dedup = ExactDedup()
    flags = [dedup.seen(document_key(t)) for t in texts]
    assert flags == [False, True, False, True, False, True, False]
    assert dedup.count == 3 and len(dedup) == 4


def test_shingles_words_then_characters_for_short_texts() -> None:
    assert shingles("A b C d E f") == [b"a b c d e", b"b c d e f"]
    assert shingles("Hello  World") == [s.encode() for s in ("hello", "ello ", "llo w", "lo wo", "o wor", " worl",
                                                            "world")]
    assert shingles("Hi") == [b"hi"]


def test_estimated_jaccard_close_to_exact() -> None:
    rng = random.Random(0)
    near = NearDedup()
    base = _words(rng, 400)
    for changes in (4, 12, 30, 60):
        other = _edit(base, rng.sample(range(400), changes), rng)
        exact = _exact_jaccard(" ".join(base), other)
        estimate = near.minhash(" ".join(base)).jaccard(near.minhash(other))
        assert abs(estimate - exact) <= 0.1, (changes, exact, estimate)
    unrelated = " ".join(_words(rng, 400))
    assert near.minhash(" ".join(base)).jaccard(near.minhash(unrelated)) <= 0.1


def test_near_dedup_flags_edited_paragraphs_not_unrelated_texts() -> None:
    rng = random.Random(1)
    originals = [_words(rng, 400) for _ in range(5)]
    near = NearDedup(threshold=0.8)
    for words in originals:
        assert not near.is_near_duplicate(" ".join(words))
    for words in originals:
        edited = _edit(words, [50, 200, 350], rng)  # three words changed
        assert _exact_jaccard(" ".join(words), edited) > 0.9
        assert near.is_near_duplicate(edited.upper())  # also case-insensitive via normalisation
    for _ in range(40):
        assert not near.is_near_duplicate(" ".join(_words(rng, 200)))
    assert near.count == 5 and near.kept == 45


def test_near_dedup_decisions_match_datasketch_lsh_and_are_deterministic() -> None:
    rng = random.Random(2)
    bases = [_words(rng, 150) for _ in range(6)]
    # Copies at many similarity levels (some near the threshold) plus unrelated texts.
    texts = [_edit(rng.choice(bases), rng.sample(range(150), rng.randrange(0, 25)), rng) for _ in range(60)]
    texts += [" ".join(_words(rng, 150)) for _ in range(10)]
    rng.shuffle(texts)
    ours, again = NearDedup(threshold=0.7), NearDedup(threshold=0.7)
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    expected = []
    for i, text in enumerate(texts):
        m = ours.minhash(text)
        hit = bool(lsh.query(m))
        if not hit:
            lsh.insert(i, m)
        expected.append(hit)
    got = [ours.is_near_duplicate(t) for t in texts]
    assert got == expected
    assert [again.is_near_duplicate(t) for t in texts] == got
    assert 0 < sum(got) < len(texts)
    assert ours.count == sum(got)
