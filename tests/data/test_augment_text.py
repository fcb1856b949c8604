"""EDA against hand-computed outputs: deletion with p=1 keeps one word, swaps move exactly two words each,
synonym replacement / insertion where only one choice exists; labels and fields kept; seeded."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from fromzero.data.augment_text import (
    EDAConfig,
    augment_file,
    augment_rows,
    random_deletion,
    random_insertion,
    random_swap,
    read_synonyms,
    synonym_replacement,
)
from fromzero.errors import ConfigError, DataError
from fromzero.eval.vector_synonyms import neighbour_synonyms

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]
SYN = {"quick": ["fast"], "fox": ["wolf"], "the": ["a"], "lazy": ["idle"]}  # "the" is a stop word: never used


@pytest.mark.parametrize("seed", range(5))
def test_deletion(seed: int) -> None:
    kept = random_deletion(WORDS, 1.0, random.Random(seed))
    assert len(kept) == 1 and kept[0] in WORDS  # p = 1 deletes all: one random word is kept
    assert random_deletion(WORDS, 0.0, random.Random(seed)) == WORDS
    assert random_deletion(["alone"], 1.0, random.Random(seed)) == ["alone"]


@pytest.mark.parametrize("n", [1, 2])
def test_swap_moves_two_words_per_swap(n: int) -> None:
    words = [f"w{i}" for i in range(8)]  # distinct, so moved positions are visible
    out = random_swap(words, n, random.Random(3))
    assert sorted(out) == sorted(words)
    moved = sum(a != b for a, b in zip(out, words, strict=True))
    assert moved == 2 if n == 1 else 0 < moved <= 2 * n
    assert random_swap(["one"], 3, random.Random(0)) == ["one"]


def test_synonym_replacement_with_one_choice_each() -> None:
    out = synonym_replacement(WORDS, 10, SYN, random.Random(0))  # n >= candidates: all three replaced
    assert out == ["the", "fast", "brown", "wolf", "jumps", "over", "the", "idle", "dog"]
    one = synonym_replacement(WORDS, 1, SYN, random.Random(0))
    assert sum(a != b for a, b in zip(one, WORDS, strict=True)) == 1 and "a" not in one


def test_insertion_adds_synonyms_only() -> None:
    out = random_insertion(WORDS, 2, {"quick": ["fast"]}, random.Random(0))
    assert len(out) == len(WORDS) + 2
    assert Counter(out) - Counter(WORDS) == Counter({"fast": 2})
    assert random_insertion(WORDS, 2, {"the": ["a"]}, random.Random(0)) == WORDS  # stop words are no anchors


def test_rows_keep_labels_and_are_seeded() -> None:
    rows = [{"text": " ".join(WORDS), "label": "ENTY", "fine": "ENTY:animal"}, {"text": "who is she", "label": "HUM"}]
    cfg = EDAConfig(alpha=0.2, n_aug=5)
    out = augment_rows(rows, cfg, SYN, seed=0)
    assert len(out) == 2 * 6 and out[0] == rows[0] and out[6] == rows[1]
    assert [r.get("augment") for r in out[:6]] == [None, "sr", "ri", "rs", "rd", "sr"]
    assert all(r["label"] == "ENTY" and r["fine"] == "ENTY:animal" for r in out[:6])
    assert all(r["label"] == "HUM" and "fine" not in r for r in out[6:])
    assert sum(a != b for a, b in zip(out[1]["text"].split(), WORDS, strict=True)) == 1  # sr: n = int(0.2 * 9)
    assert len(out[2]["text"].split()) == len(WORDS) + 1  # ri: one insertion
    assert sorted(out[3]["text"].split()) == sorted(WORDS)  # rs: the same words
    assert out == augment_rows(rows, cfg, SYN, seed=0)
    assert out != augment_rows(rows, cfg, SYN, seed=1)
    other_first = [{"text": "a different first row", "label": "DESC"}, rows[1]]
    assert augment_rows(other_first, cfg, SYN, seed=0)[6:] == out[6:]  # draws: (seed, row index), not earlier rows
    with pytest.raises(ConfigError, match="sr and ri need synonyms"):
        augment_rows(rows, cfg, None)


@pytest.mark.parametrize(("kwargs", "key"), [({"alpha": 0.0}, "--alpha"), ({"n_aug": 0}, "--n-aug"),
                                             ({"ops": ("rs", "xx")}, "--ops")])
def test_bad_config(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        EDAConfig(**kwargs)


def test_synonyms_file_and_augment_file(tmp_path: Path) -> None:
    syn = tmp_path / "syn.txt"
    syn.write_text("# comment\nquick fast speedy\n\nquick rapid fast\n", encoding="utf-8")
    assert read_synonyms(syn) == {"quick": ["fast", "speedy", "rapid"]}
    syn.write_text("quick fast\nlonely\n", encoding="utf-8")
    with pytest.raises(DataError, match="syn.txt:2: 'lonely' has no synonyms"):
        read_synonyms(syn)
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"text": "a b c d", "label": "X"}) + "\n", encoding="utf-8")
    stats = augment_file(src, dst, EDAConfig(n_aug=2, ops=("rs", "rd")))
    lines = [json.loads(x) for x in dst.read_text(encoding="utf-8").splitlines()]
    assert stats == {"rows": 1, "written": 3} and [r["label"] for r in lines] == ["X"] * 3
    with pytest.raises(ConfigError, match="output exists"):
        augment_file(src, dst, EDAConfig(ops=("rs",)))


def test_neighbour_synonyms_equal_naive_cosine() -> None:
    vectors = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]])
    words = ["good", "fine", "blue", "bad", "okay"]
    got = neighbour_synonyms(vectors, words, ["good", "unknown"], k=3, min_similarity=0.5)
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    cos = {w: float(unit[0] @ unit[i]) for i, w in enumerate(words) if w != "good"}
    want = [w for w in sorted(cos, key=cos.get, reverse=True)[:3] if cos[w] >= 0.5]
    assert got == {"good": want} and want == ["fine", "okay"]
