"""bible-en-es: verse alignment by key (a fake module reader, no Debian needed), note stripping, the held-out
book never leaks into training or the pretraining corpora, and (when the SWORD modules and pysword are
installed) the real data; without them that test skips, and under CI=true their absence is a failure
(scripts/install_bible.sh and scripts/setup.sh dev install them)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from fromzero.data.datasets.bible import (
    EN_MODULE,
    ES_MODULE,
    SWORD_DIR,
    align_verses,
    clean_verse,
    split_pairs,
    sword_verses,
    write_bible_splits,
)
from fromzero.data.task_data import read_tsv_pairs
from fromzero.errors import DataError


def test_clean_verse_drops_notes_before_tags() -> None:
    raw = ('<w lemma="strong:G2400">Behold</w>,<note placement="foot"><reference type="annotateRef">1:2 '
           '</reference>“Behold”, from “ἰδοὺ”, means look.</note> <w>I</w> send<note type="x"/>my'
           '<div eID="g1" type="x-p"/>\n messenger &amp; more')
    assert clean_verse(raw) == "Behold, I send my messenger & more"
    assert clean_verse('<note n="a">only a note</note>  <lg sID="x"/>') == ""
    rev = ('<w>saints</w>. Amen. <chapter eID="Rev.22"/> <div canonical="true" eID="g1" osisID="Rev" type="book"/> '
           '<div sID="g2" type="glossary"/> <title>World English Bible Glossary</title> Abaddon ...')
    assert clean_verse(rev) == "saints. Amen."


def _fake(verses: dict[tuple[str, int, int], str]):
    return iter(verses.items())


def test_alignment_is_by_key_not_by_position() -> None:
    # the Spanish module lacks Gen 1:2 and lists verses in another order: zip() would misalign every later pair
    en = {("Gen", 1, 1): "In the beginning", ("Gen", 1, 2): "The earth was", ("Gen", 1, 3): "God said",
          ("Ruth", 1, 1): "In the days", ("Ruth", 1, 2): "<note>x</note>"}
    es = {("Gen", 1, 3): "Y dijo Dios", ("Gen", 1, 1): "En el principio", ("Ruth", 1, 1): "Y aconteció",
          ("Ruth", 1, 2): "Elimelech", ("Exod", 1, 1): "Estos son"}
    pairs, stats = align_verses(_fake(en), _fake(es))
    assert [(p.key, p.source, p.target) for p in pairs] == [
        (("Gen", 1, 1), "In the beginning", "En el principio"), (("Gen", 1, 3), "God said", "Y dijo Dios"),
        (("Ruth", 1, 1), "In the days", "Y aconteció")]
    assert (stats.source_verses, stats.target_verses) == (5, 5)
    assert (stats.only_in_source, stats.only_in_target, stats.empty_after_cleaning) == (1, 1, 1)
    assert stats.books == ["Gen", "Ruth"]


def test_a_repeated_key_is_an_error() -> None:
    with pytest.raises(DataError, match="repeats verse Gen 1:1"):
        align_verses(iter([(("Gen", 1, 1), "a"), (("Gen", 1, 1), "b")]), iter([]))


def _synthetic(n_books: int = 4, verses: int = 30):
    books = ["Gen", "Ruth", "Mark", "Acts"][:n_books]
    en = {(b, 1, v): f"{b} english verse {v}" for b in books for v in range(1, verses + 1)}
    es = {(b, 1, v): f"{b} versículo {v}" for b in books for v in range(1, verses + 1)}
    return align_verses(_fake(en), _fake(es))


def test_held_out_book_never_reaches_training(tmp_path: Path) -> None:
    pairs, stats = _synthetic()
    splits = split_pairs(pairs, "Ruth", n_validation=10, seed=3)
    assert {p.key[0] for p in splits["test"]} == {"Ruth"} and len(splits["test"]) == 30
    assert all(p.key[0] != "Ruth" for s in ("train", "validation") for p in splits[s])
    assert len(splits["validation"]) == 10 and len(splits["train"]) == 80
    assert not {p.key for p in splits["train"]} & {p.key for p in splits["validation"]}
    assert split_pairs(pairs, "Ruth", 10, seed=3) == splits  # seeded: the same split again
    assert split_pairs(pairs, "Ruth", 10, seed=4)["validation"] != splits["validation"]
    paths = write_bible_splits(splits, stats, tmp_path, "Ruth")
    train = read_tsv_pairs(paths["train"])
    assert [(t.source, t.target) for t in train] == [(p.source, p.target) for p in splits["train"]]
    corpus = (tmp_path / "corpus_en.txt").read_text() + (tmp_path / "corpus_es.txt").read_text()
    assert "Ruth" not in corpus  # neither the test book nor the validation verses are pretraining text
    assert not any(p.source in corpus.splitlines() for p in splits["validation"])
    assert json.loads((tmp_path / "stats.json").read_text())["test_pairs"] == 30


def test_unknown_test_book_lists_the_books() -> None:
    pairs, _ = _synthetic()
    with pytest.raises(DataError, match="no aligned verse in the test book 'Jonah'; choose one of Acts, Gen"):
        split_pairs(pairs, "Jonah", 5)


def test_missing_modules_say_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install sword-text-web sword-text-sparv"):
        next(sword_verses(EN_MODULE, tmp_path))
    if importlib.util.find_spec("pysword") is not None:  # an empty modules folder: the module is named
        (tmp_path / "mods.d").mkdir()
        with pytest.raises(DataError, match=f"SWORD module {EN_MODULE} is not installed"):
            next(sword_verses(EN_MODULE, tmp_path))


def _require_real_data() -> None:
    missing = [what for what, ok in (
        ("pysword", importlib.util.find_spec("pysword") is not None),
        (f"{SWORD_DIR}/mods.d/{EN_MODULE}.conf", (Path(SWORD_DIR) / "mods.d" / f"{EN_MODULE}.conf").is_file()),
        (f"{SWORD_DIR}/mods.d/{ES_MODULE}.conf", (Path(SWORD_DIR) / "mods.d" / f"{ES_MODULE}.conf").is_file()))
        if not ok]
    if missing:
        message = f"Bible data not installed ({', '.join(missing)}): bash scripts/install_bible.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI installs it through scripts/test.sh")
        pytest.skip(message)


def test_real_bible_one_book() -> None:
    """The installed modules read through pysword for one book (Ruth; the whole Bible takes minutes)."""
    _require_real_data()
    pairs, stats = align_verses(sword_verses(EN_MODULE, books=["Ruth"]), sword_verses(ES_MODULE, books=["Ruth"]))
    assert stats.aligned == 85 and stats.only_in_source == stats.only_in_target == stats.empty_after_cleaning == 0
    assert pairs[0].key == ("Ruth", 1, 1) and pairs[-1].key == ("Ruth", 4, 22)
    assert pairs[0].source.startswith("In the days when the judges judged, there was a famine in the land.")
    assert pairs[0].target.startswith("Y ACONTECIÓ en los días que gobernaban los jueces, que hubo hambre")
    assert all("<" not in p.source + p.target and "strong:" not in p.source for p in pairs)
